// Package web serves the browser SDK (an ES module) and the spaces demo page.
package web

import (
	"embed"
	"net/http"
)

//go:embed static/spacecast-rtc.js static/demo.html
var files embed.FS

func serve(name, ctype string) http.Handler {
	b, err := files.ReadFile("static/" + name)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err != nil {
			http.Error(w, "missing asset", http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", ctype)
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b)
	})
}

// SDK serves spacecast-rtc.js.
func SDK() http.Handler { return serve("spacecast-rtc.js", "text/javascript; charset=utf-8") }

// Demo serves the demo page.
func Demo() http.Handler { return serve("demo.html", "text/html; charset=utf-8") }

package httpapi

import (
	"encoding/base64"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
)

// MaxOffset bounds the page form of lists: ?page= may skip at most this many rows
// ((page-1) × limit). Deeper pages are walked with ?cursor=, which costs O(limit) at any depth.
const MaxOffset = 10_000

// Key is a row's place in a newest-first list: its creation time (the store's own unit) and
// its id, which breaks ties.
type Key struct {
	Time int64
	ID   string
}

// firstKey sorts after every row: a list without a cursor starts at the newest row.
var firstKey = Key{Time: math.MaxInt64}

// Cursor encodes k as an opaque URL-safe string.
func (k Key) Cursor() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(k.Time, 10) + ":" + k.ID))
}

// ParseCursor decodes a cursor made by Key.Cursor.
func ParseCursor(s string) (Key, error) {
	bad := Invalid("cursor is not one this API issued: pass the next_cursor of a previous page unchanged")
	if s == "" || len(s) > 256 {
		return Key{}, bad
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return Key{}, bad
	}
	ts, id, ok := strings.Cut(string(b), ":")
	if !ok || id == "" || !cleanText(id) {
		return Key{}, bad
	}
	t, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || t < 0 || t == math.MaxInt64 {
		return Key{}, bad
	}
	return Key{Time: t, ID: id}, nil
}

// Page is a validated list request, in one of two forms: the cursor form reads Limit rows
// after After (the key in ?cursor=); the page form skips Offset rows first (at most
// MaxOffset). Without a cursor After sorts after every row, so a store writes one query for
// both: WHERE (time, id) < (After.Time, After.ID) ORDER BY time DESC, id DESC LIMIT Fetch()
// OFFSET Offset.
type Page struct {
	Limit, Page, Offset int
	After               Key
	Cursor              bool // After came from ?cursor=
}

// NewPage returns the first page of limit rows, as Paging does without ?page= or ?cursor=.
func NewPage(limit int) Page { return Page{Limit: limit, Page: 1, After: firstKey} }

// Fetch is the number of rows a store reads: one more than Limit, which tells whether a next
// page exists.
func (p Page) Fetch() int { return p.Limit + 1 }

// Paging reads ?limit= (default 25, 1..100) and either ?page= (default 1, 1-based, skipping
// at most MaxOffset rows) or ?cursor= (a next_cursor of a previous page).
func Paging(c echo.Context) (Page, error) {
	p := Page{Limit: 25, Page: 1, After: firstKey}
	if s := c.QueryParam("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 100 {
			return Page{}, Invalid("limit must be an integer between 1 and 100")
		}
		p.Limit = n
	}
	page, cursor := c.QueryParam("page"), c.QueryParam("cursor")
	if page != "" && cursor != "" {
		return Page{}, Invalid("give either page or cursor, not both")
	}
	if cursor != "" {
		k, err := ParseCursor(cursor)
		if err != nil {
			return Page{}, err
		}
		p.After, p.Cursor = k, true
		return p, nil
	}
	if page != "" {
		n, err := strconv.Atoi(page)
		if err != nil || n < 1 {
			return Page{}, Invalid("page must be an integer of at least 1")
		}
		if n-1 > MaxOffset/p.Limit {
			return Page{}, Invalid("page %d of %d rows starts past the first %d rows: walk deeper lists with cursor (each page's next_cursor)", n, p.Limit, MaxOffset)
		}
		p.Page = n
	}
	p.Offset = (p.Page - 1) * p.Limit
	return p, nil
}

// ScanKey returns a row scanner that scans the list query's columns into a row and then one
// more column, the row's key time, into t: a store selects its usual columns plus the key
// time and keeps its scan function.
func ScanKey(sc interface{ Scan(...any) error }, t *int64) interface{ Scan(...any) error } {
	return keyScanner{sc: sc, t: t}
}

type keyScanner struct {
	sc interface{ Scan(...any) error }
	t  *int64
}

func (k keyScanner) Scan(dest ...any) error { return k.sc.Scan(append(dest, k.t)...) }

// PageOf trims rows read with Fetch() to the page and returns the cursor of the next page, ""
// when this page is the last; keys[i] is rows[i]'s key.
func PageOf[T any](p Page, rows []T, keys []Key) ([]T, string) {
	if len(rows) <= p.Limit {
		return rows, ""
	}
	return rows[:p.Limit], keys[p.Limit-1].Cursor()
}

// List writes a list answer: {"data": rows, "next_cursor": next} (null on the last page), the
// shape Mux's cursor lists have and the SDKs' iterators follow.
func List[T any](c echo.Context, rows []T, next string) error {
	if rows == nil {
		rows = []T{}
	}
	var nc *string
	if next != "" {
		nc = &next
	}
	return c.JSON(http.StatusOK, struct {
		Data       []T     `json:"data"`
		NextCursor *string `json:"next_cursor"`
	}{rows, nc})
}

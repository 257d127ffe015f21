package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/spacecast/spacecast/libs/httpapi"
	"github.com/spacecast/spacecast/services/livestream/internal/store"
)

// Mux settings Spacecast does not implement: a request that sets one gets a 400 naming the
// feature. A value listed in accepted is what Spacecast does anyway and passes.
var unsupported = map[string]string{
	"advanced_playback_policies":     "advanced playback policies (DRM)",
	"drm_configuration_id":           "DRM",
	"embedded_subtitles":             "embedded subtitles (closed captions)",
	"generated_subtitles":            "generated subtitles",
	"reconnect_slate_url":            "reconnect slates",
	"use_slate_for_standard_latency": "reconnect slates",
	"audio_only_with_image":          "audio-only with an image",
}

// Asset settings a recording cannot take (new_asset_settings.X).
var unsupportedAsset = map[string]string{
	"advanced_playback_policies": "advanced playback policies (DRM)",
	"copy_overlays":              "overlays",
	"directives":                 "asset directives",
	"encoding_tier":              "encoding tiers (recordings keep the encoder's encoding)",
	"video_quality":              "video quality levels (recordings keep the encoder's encoding)",
	"generate_shots":             "shot detection",
	"input":                      "asset inputs (overlays, subtitles, audio tracks)",
	"inputs":                     "asset inputs (overlays, subtitles, audio tracks)",
	"master_access":              "master access (downloads of the master)",
	"normalize_audio":            "audio normalisation",
	"per_title_encode":           "per-title encoding",
}

// accepted are unsupported settings' values that describe what Spacecast does.
var accepted = map[string]string{
	"use_slate_for_standard_latency": `false`,
	"reconnect_slate_url":            `""`,
	"embedded_subtitles":             `[]`,
	"generated_subtitles":            `[]`,
	"advanced_playback_policies":     `[]`,
	"encoding_tier":                  `"baseline"`,
	"video_quality":                  `"basic"`,
	"master_access":                  `"none"`,
	"normalize_audio":                `false`,
	"generate_shots":                 `false`,
	"copy_overlays":                  `false`,
}

func compactRaw(raw json.RawMessage) string {
	var b bytes.Buffer
	if json.Compact(&b, raw) != nil {
		return string(raw)
	}
	return b.String()
}

// checkUnsupported refuses the features of table that body sets, naming the first (sorted).
func checkUnsupported(prefix string, table map[string]string, obj map[string]json.RawMessage) error {
	var keys []string
	for k := range obj {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		feature, ok := table[k]
		if !ok || bytes.Equal(obj[k], []byte("null")) || accepted[k] == compactRaw(obj[k]) {
			continue
		}
		return httpapi.Invalid("%s%s: Spacecast does not implement %s", prefix, k, feature)
	}
	return nil
}

// readMeta reads a meta object with the given keys (each a string of at most 255 characters).
func readMeta(field string, raw json.RawMessage, withIDs bool) (*store.Meta, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, httpapi.Invalid("%s: want an object", field)
	}
	out := &store.Meta{}
	for k, v := range m {
		var dst *string
		switch {
		case k == "title":
			dst = &out.Title
		case k == "creator_id" && withIDs:
			dst = &out.CreatorID
		case k == "external_id" && withIDs:
			dst = &out.ExternalID
		default:
			want := `"title"`
			if withIDs {
				want = `"title", "creator_id" and "external_id"`
			}
			return nil, httpapi.Invalid("%s.%s: unknown field (%s has %s)", field, k, field, want)
		}
		if err := json.Unmarshal(v, dst); err != nil {
			return nil, httpapi.Invalid("%s.%s: want a string", field, k)
		}
		if utf8.RuneCountInString(*dst) > maxPassthrough {
			return nil, httpapi.Invalid("%s.%s must be at most %d characters", field, k, maxPassthrough)
		}
	}
	return out, nil
}

// readAssetSettings checks new_asset_settings and returns what recordings will take from it
// (nil when absent).
func readAssetSettings(raw json.RawMessage) (*store.AssetSettings, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	obj := map[string]json.RawMessage{}
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, httpapi.Invalid("new_asset_settings: want an object")
	}
	if err := checkUnsupported("new_asset_settings.", unsupportedAsset, obj); err != nil {
		return nil, err
	}
	out := &store.AssetSettings{}
	for k := range obj {
		switch k {
		case "playback_policy", "playback_policies", "meta", "passthrough", "test", "max_resolution_tier", "mp4_support", "static_renditions":
		default:
			if _, ok := unsupportedAsset[k]; !ok {
				return nil, httpapi.Invalid("new_asset_settings.%s: unknown field", k)
			}
		}
	}
	pols, err := policies("new_asset_settings.", obj["playback_policy"], obj["playback_policies"])
	if err != nil {
		return nil, err
	}
	out.PlaybackPolicies = pols
	if out.PlaybackPolicies == nil {
		out.PlaybackPolicies = []string{}
	}
	if pt, ok := obj["passthrough"]; ok && !bytes.Equal(pt, []byte("null")) {
		var s string
		if err := json.Unmarshal(pt, &s); err != nil {
			return nil, httpapi.Invalid("new_asset_settings.passthrough: want a string")
		}
		if utf8.RuneCountInString(s) > maxPassthrough {
			return nil, httpapi.Invalid("new_asset_settings.passthrough must be at most %d characters", maxPassthrough)
		}
		out.Passthrough = &s
	}
	if t, ok := obj["test"]; ok && !bytes.Equal(t, []byte("null")) {
		if err := json.Unmarshal(t, &out.Test); err != nil {
			return nil, httpapi.Invalid("new_asset_settings.test: want a boolean")
		}
	}
	if mt, ok := obj["max_resolution_tier"]; ok && !bytes.Equal(mt, []byte("null")) {
		var s string
		if err := json.Unmarshal(mt, &s); err != nil || (s != "1080p" && s != "1440p" && s != "2160p") {
			return nil, httpapi.Invalid(`new_asset_settings.max_resolution_tier: want "1080p", "1440p" or "2160p", got %s`, compactRaw(mt))
		}
		out.MaxResolutionTier = s
	}
	if out.Meta, err = readMeta("new_asset_settings.meta", obj["meta"], true); err != nil {
		return nil, err
	}
	if out.StaticRenditions, err = readRenditions("new_asset_settings.static_renditions", obj["static_renditions"]); err != nil {
		return nil, err
	}
	if out.MP4Support, err = readMP4Support("new_asset_settings.mp4_support", obj["mp4_support"]); err != nil {
		return nil, err
	}
	if out.MP4Support != "" && len(out.StaticRenditions) > 0 {
		return nil, httpapi.Invalid("new_asset_settings: mp4_support and static_renditions cannot both be set (mp4_support is Mux's deprecated form)")
	}
	return out, nil
}

// resolutions are the static rendition resolutions Mux's API takes (capped-1080p only through
// mp4_support).
var resolutions = []string{"highest", "audio-only", "2160p", "1440p", "1080p", "720p", "540p", "480p", "360p", "270p"}

// readRenditionRequest reads one {resolution, passthrough?}.
func readRenditionRequest(field string, raw json.RawMessage) (store.RenditionRequest, error) {
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return store.RenditionRequest{}, httpapi.Invalid("%s: want an object {resolution, passthrough}", field)
	}
	var out store.RenditionRequest
	for k, v := range obj {
		switch k {
		case "resolution":
			if json.Unmarshal(v, &out.Resolution) != nil || !slices.Contains(resolutions, out.Resolution) {
				return out, httpapi.Invalid("%s.resolution: want one of %s, got %s", field, strings.Join(resolutions, ", "), compactRaw(v))
			}
		case "passthrough":
			if bytes.Equal(v, []byte("null")) {
				continue
			}
			var s string
			if json.Unmarshal(v, &s) != nil {
				return out, httpapi.Invalid("%s.passthrough: want a string", field)
			}
			if utf8.RuneCountInString(s) > maxPassthrough {
				return out, httpapi.Invalid("%s.passthrough must be at most %d characters", field, maxPassthrough)
			}
			out.Passthrough = &s
		default:
			return out, httpapi.Invalid("%s.%s: unknown field (want resolution and passthrough)", field, k)
		}
	}
	if out.Resolution == "" {
		return out, httpapi.Invalid("%s.resolution is required", field)
	}
	return out, nil
}

// readRenditions reads a static_renditions array (nil when absent or empty).
func readRenditions(field string, raw json.RawMessage) ([]store.RenditionRequest, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return nil, nil
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return nil, httpapi.Invalid("%s: want an array of {resolution, passthrough}", field)
	}
	var out []store.RenditionRequest
	for i, it := range items {
		r, err := readRenditionRequest(fmt.Sprintf("%s[%d]", field, i), it)
		if err != nil {
			return nil, err
		}
		for _, prev := range out {
			if prev.Resolution == r.Resolution {
				return nil, httpapi.Invalid("%s[%d].resolution: %q is asked for twice", field, i, r.Resolution)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// readMP4Support reads Mux's deprecated mp4_support ("" for none).
func readMP4Support(field string, raw json.RawMessage) (string, error) {
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if _, ok := store.MP4SupportResolutions(s); ok {
			if s == store.MP4None {
				return "", nil
			}
			return s, nil
		}
	}
	return "", httpapi.Invalid(`%s: want "none", "standard", "capped-1080p", "audio-only" or "audio-only,capped-1080p", got %s`, field, compactRaw(raw))
}

package api

import (
	"bytes"
	"encoding/json"
	"sort"
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
	"mp4_support":                "MP4 renditions",
	"static_renditions":          "static (MP4) renditions",
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
	"mp4_support":                    `"none"`,
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
		case "playback_policy", "playback_policies", "meta", "passthrough", "test", "max_resolution_tier":
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
	return out, nil
}

package store

import "encoding/json"

// Three shapes of each object: the stored row (LiveStream, Asset: never marshalled), the API
// resource (what REST answers) and the event payload (what goes to Kafka and so to webhooks and
// analytics consumers). A live stream's event payload has no stream key: secrets never leave
// through the topics.

// Meta is Mux's metadata object (a live stream uses only title).
type Meta struct {
	Title      string `json:"title,omitempty"`
	CreatorID  string `json:"creator_id,omitempty"`
	ExternalID string `json:"external_id,omitempty"`
}

// AssetSettings are the settings a live stream's recordings take when they start (Mux's
// new_asset_settings): their playback ids, passthrough, metadata and test flag.
type AssetSettings struct {
	PlaybackPolicies []string `json:"playback_policies"`
	Passthrough      *string  `json:"passthrough,omitempty"`
	Meta             *Meta    `json:"meta,omitempty"`
	Test             bool     `json:"test,omitempty"`
	// MaxResolutionTier caps the ladder ("1080p", "1440p", "2160p"; "" = 1080p).
	MaxResolutionTier string `json:"max_resolution_tier,omitempty"`
	// StaticRenditions are the MP4/M4A files each recording gets; MP4Support is Mux's
	// deprecated way to ask for them ("" or "none": none). At most one of the two is set.
	StaticRenditions []RenditionRequest `json:"static_renditions,omitempty"`
	MP4Support       string             `json:"mp4_support,omitempty"`
}

// decodeAssetSettings reads a stored new_asset_settings column. Rows written before the
// settings were checked may hold playback_policy (a string or an array) and other keys: those
// are read leniently, unknown keys ignored.
func decodeAssetSettings(s string) *AssetSettings {
	var raw struct {
		AssetSettings
		PlaybackPolicy json.RawMessage `json:"playback_policy"`
		Meta           json.RawMessage `json:"meta"`
	}
	if json.Unmarshal([]byte(s), &raw) != nil {
		return &AssetSettings{PlaybackPolicies: []string{}}
	}
	out := raw.AssetSettings
	if len(raw.PlaybackPolicy) > 0 {
		var one string
		var many []string
		if json.Unmarshal(raw.PlaybackPolicy, &one) == nil && one != "" {
			out.PlaybackPolicies = append([]string{one}, out.PlaybackPolicies...)
		} else if json.Unmarshal(raw.PlaybackPolicy, &many) == nil {
			out.PlaybackPolicies = append(many, out.PlaybackPolicies...)
		}
	}
	var m Meta
	if len(raw.Meta) > 0 && json.Unmarshal(raw.Meta, &m) == nil && m != (Meta{}) {
		out.Meta = &m
	}
	keep := out.PlaybackPolicies[:0:0]
	for _, p := range out.PlaybackPolicies {
		if p == PolicyPublic || p == PolicySigned {
			keep = append(keep, p)
		}
	}
	out.PlaybackPolicies = keep
	return &out
}

func encodeAssetSettings(a *AssetSettings) any {
	if a == nil {
		return nil
	}
	b, _ := json.Marshal(a)
	return string(b)
}

func decodeMeta(s string) *Meta {
	var m Meta
	if json.Unmarshal([]byte(s), &m) != nil || m == (Meta{}) {
		return nil
	}
	return &m
}

func encodeMeta(m *Meta) any {
	if m == nil || *m == (Meta{}) {
		return nil
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// LiveStreamEvent is a live stream as events carry it: the resource without its stream key.
type LiveStreamEvent struct {
	ID                         string                 `json:"id"`
	CreatedAt                  string                 `json:"created_at"`
	Status                     string                 `json:"status"`
	PlaybackIDs                []PlaybackID           `json:"playback_ids"`
	ReconnectWindow            int                    `json:"reconnect_window"`
	LatencyMode                string                 `json:"latency_mode"`
	ReducedLatency             bool                   `json:"reduced_latency"`
	LowLatency                 bool                   `json:"low_latency"`
	MaxContinuousDuration      int                    `json:"max_continuous_duration"`
	Passthrough                *string                `json:"passthrough,omitempty"`
	NewAssetSettings           *AssetSettings         `json:"new_asset_settings,omitempty"`
	RecentAssetIDs             []string               `json:"recent_asset_ids"`
	ActiveAssetID              *string                `json:"active_asset_id,omitempty"`
	ActiveIngestProtocol       string                 `json:"active_ingest_protocol,omitempty"`
	AudioOnly                  bool                   `json:"audio_only"`
	Meta                       *Meta                  `json:"meta,omitempty"`
	SimulcastTargets           []SimulcastTargetEvent `json:"simulcast_targets"`
	UseSlateForStandardLatency bool                   `json:"use_slate_for_standard_latency"`
	Test                       bool                   `json:"test"`
}

// LiveStreamResource is a live stream as the API shows it.
type LiveStreamResource struct {
	StreamKey string `json:"stream_key"`
	LiveStreamEvent
	SimulcastTargets []SimulcastTargetResource `json:"simulcast_targets"` // shadows the event's (these carry their stream keys)
}

// Event is the live stream's event payload.
func (ls LiveStream) Event() LiveStreamEvent {
	e := LiveStreamEvent{ID: ls.ID, CreatedAt: ls.CreatedAt, Status: ls.Status, PlaybackIDs: ls.PlaybackIDs,
		ReconnectWindow: ls.ReconnectWindow, LatencyMode: ls.LatencyMode, ReducedLatency: ls.LatencyMode == "reduced",
		LowLatency: ls.LatencyMode == "low", MaxContinuousDuration: ls.MaxContinuousDuration, Passthrough: ls.Passthrough,
		NewAssetSettings: ls.NewAssetSettings, RecentAssetIDs: ls.RecentAssetIDs, ActiveAssetID: ls.ActiveAssetID,
		AudioOnly: ls.AudioOnly, Meta: ls.Meta, SimulcastTargets: []SimulcastTargetEvent{}, Test: ls.Test}
	for _, t := range ls.SimulcastTargets {
		e.SimulcastTargets = append(e.SimulcastTargets, t.Event())
	}
	if e.PlaybackIDs == nil {
		e.PlaybackIDs = []PlaybackID{}
	}
	if e.RecentAssetIDs == nil {
		e.RecentAssetIDs = []string{}
	}
	if ls.Connected {
		e.ActiveIngestProtocol = ls.IngestProtocol
	}
	return e
}

// Resource is the live stream as the API shows it.
func (ls LiveStream) Resource() LiveStreamResource {
	r := LiveStreamResource{StreamKey: ls.StreamKey, LiveStreamEvent: ls.Event(), SimulcastTargets: []SimulcastTargetResource{}}
	for _, t := range ls.SimulcastTargets {
		r.SimulcastTargets = append(r.SimulcastTargets, t.Resource())
	}
	return r
}

// AssetProgress is Mux's progress object of an asset.
type AssetProgress struct {
	Progress int    `json:"progress"`
	State    string `json:"state"`
}

// AssetResource is a recording as the API shows it.
type AssetResource struct {
	ID                string        `json:"id"`
	CreatedAt         string        `json:"created_at"`
	Status            string        `json:"status"`
	Duration          *float64      `json:"duration,omitempty"`
	LiveStreamID      string        `json:"live_stream_id"`
	PlaybackIDs       []PlaybackID  `json:"playback_ids"`
	Passthrough       *string       `json:"passthrough,omitempty"`
	IsLive            bool          `json:"is_live"`
	Progress          AssetProgress `json:"progress"`
	IngestType        string        `json:"ingest_type"`
	EncodingTier      string        `json:"encoding_tier"`
	VideoQuality      string        `json:"video_quality"`
	MasterAccess      string        `json:"master_access"`
	MaxResolutionTier string        `json:"max_resolution_tier"`
	Meta              *Meta         `json:"meta,omitempty"`
	Test              bool          `json:"test"`

	// From the media (absent until the ingest has seen it).
	Tracks              []Track         `json:"tracks,omitempty"`
	AspectRatio         string          `json:"aspect_ratio,omitempty"`
	ResolutionTier      string          `json:"resolution_tier,omitempty"`
	MaxStoredResolution string          `json:"max_stored_resolution,omitempty"`
	MaxStoredFrameRate  float64         `json:"max_stored_frame_rate,omitempty"`
	RecordingTimes      []RecordingTime `json:"recording_times"`

	// Static (MP4) renditions: absent until one is asked for.
	MP4Support       string                    `json:"mp4_support"`
	StaticRenditions *StaticRenditionsResource `json:"static_renditions,omitempty"`
}

// AssetEvent is a recording as events carry it (an asset holds no secret: the same fields).
type AssetEvent AssetResource

// Resource is the asset as the API shows it.
func (a Asset) Resource() AssetResource {
	r := AssetResource{ID: a.ID, CreatedAt: a.CreatedAt, Status: a.Status, Duration: a.Duration, LiveStreamID: a.LiveStreamID,
		PlaybackIDs: a.PlaybackIDs, Passthrough: a.Passthrough, IsLive: a.Status == AssetPreparing,
		IngestType: "live_rtmp", EncodingTier: "baseline", VideoQuality: "basic", MasterAccess: "none",
		MaxResolutionTier: "2160p", Meta: a.Meta, Test: a.Test,
		MP4Support: mp4Support(a.Renditions), StaticRenditions: staticRenditions(a.Renditions)}
	if r.PlaybackIDs == nil {
		r.PlaybackIDs = []PlaybackID{}
	}
	describeMedia(&r, a)
	switch a.Status {
	case AssetPreparing:
		r.Progress = AssetProgress{Progress: -1, State: "live"}
	case AssetReady:
		r.Progress = AssetProgress{Progress: 100, State: "completed"}
	default:
		r.Progress = AssetProgress{Progress: -1, State: "errored"}
	}
	return r
}

// Event is the asset's event payload.
func (a Asset) Event() AssetEvent { return AssetEvent(a.Resource()) }

package space

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the SFU's counters on /metrics (one set per node, shared by its spaces).
type Metrics struct {
	Participants        prometheus.Gauge
	Tracks              prometheus.Gauge
	ForwardedPackets    prometheus.Counter
	ForwardedBytes      prometheus.Counter
	NACKs               prometheus.Counter
	PLIs                prometheus.Counter
	LayerSwitches       prometheus.Counter
	NegotiationFailures prometheus.Counter
	Reconnects          prometheus.Counter
}

// NewMetrics builds the counters and registers them on reg (nil: not exported).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		Participants: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spacecast_sfu_participants",
			Help: "Participants connected to this node (including those inside the reconnect window)."}),
		Tracks: prometheus.NewGauge(prometheus.GaugeOpts{Name: "spacecast_sfu_tracks", Help: "Published tracks on this node."}),
		ForwardedPackets: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_forwarded_packets_total",
			Help: "RTP packets received from publishers and forwarded to their subscribers."}),
		ForwardedBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_forwarded_bytes_total",
			Help: "RTP bytes received from publishers and forwarded to their subscribers."}),
		NACKs: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_nacks_total", Help: "NACKs received from subscribers."}),
		PLIs:  prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_plis_total", Help: "Keyframe requests (PLI) sent to publishers."}),
		LayerSwitches: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_layer_switches_total",
			Help: "Simulcast layer switches of subscribers."}),
		NegotiationFailures: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_negotiation_failures_total",
			Help: "Offers or answers that could not be applied."}),
		Reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "spacecast_sfu_reconnects_total",
			Help: "Connections that resumed a participant with reconnect_id."}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.Participants, m.Tracks, m.ForwardedPackets, m.ForwardedBytes, m.NACKs,
			m.PLIs, m.LayerSwitches, m.NegotiationFailures, m.Reconnects} {
			_ = reg.Register(c)
		}
	}
	return m
}

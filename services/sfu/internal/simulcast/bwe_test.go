package simulcast

import (
	"errors"
	"testing"

	"github.com/pion/interceptor"
	"github.com/pion/webrtc/v4"
)

func TestRegisterBWETake(t *testing.T) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterDefaultCodecs(); err != nil {
		t.Fatal(err)
	}
	ir := &interceptor.Registry{}
	bwe, err := RegisterBWE(m, ir, BWEOptions{InitialBitrate: 700_000})
	if err != nil {
		t.Fatal(err)
	}
	api := webrtc.NewAPI(webrtc.WithMediaEngine(m), webrtc.WithInterceptorRegistry(ir))
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	est, err := bwe.Take(pc)
	if err != nil {
		t.Fatal(err)
	}
	if got := est.Bitrate(); got != 700_000 {
		t.Fatalf("initial estimate %d", got)
	}
	if _, err := bwe.Take(pc); !errors.Is(err, ErrNoEstimator) {
		t.Fatalf("second Take: %v", err)
	}
	other, err := webrtc.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := bwe.Take(other); !errors.Is(err, ErrNoEstimator) {
		t.Fatalf("Take of a connection from another API: %v", err)
	}
}

func TestRegisterBWEBadOptions(t *testing.T) {
	for _, o := range []BWEOptions{
		{InitialBitrate: -1},
		{MinBitrate: 2_000_000, MaxBitrate: 1_000_000},
		{InitialBitrate: 50_000}, // below the default minimum
		{InitialBitrate: 20_000_000},
	} {
		if _, err := RegisterBWE(&webrtc.MediaEngine{}, &interceptor.Registry{}, o); !errors.Is(err, ErrBadOptions) {
			t.Errorf("RegisterBWE(%+v): %v", o, err)
		}
	}
}

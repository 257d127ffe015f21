package rtmp

import (
	"bytes"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestAMF0RoundTrip(t *testing.T) {
	long := strings.Repeat("x", 70000)
	cases := []struct {
		name string
		in   any
		want any // decoded form (nil = same as in)
	}{
		{"number", 3.5, nil},
		{"negative zero", math.Copysign(0, -1), nil},
		{"int becomes number", 42, 42.0},
		{"bool", true, nil},
		{"string", "connect", nil},
		{"empty string", "", nil},
		{"long string", long, nil},
		{"null", nil, nil},
		{"undefined", Undefined{}, nil},
		{"unsupported", Unsupported{}, nil},
		{"object", Object{{"app", "live"}, {"tcUrl", "rtmp://h/live"}, {"objectEncoding", 0.0}}, nil},
		{"empty object", Object{}, Object(nil)},
		{"nested", Object{{"a", Object{{"b", []any{1.0, "two", nil, Object{{"c", false}}}}}}}, nil},
		{"ecma array", ECMAArray{{"duration", 0.0}, {"width", 640.0}, {"encoder", "Lavf"}}, nil},
		{"strict array", []any{1.0, 2.0, "x"}, nil},
		{"date", Date{Millis: 1.7e12, TZ: -60}, nil},
		{"xml", XMLDocument("<a/>"), nil},
		{"typed object", TypedObject{Class: "flex.X", Props: Object{{"k", "v"}}}, nil},
		{"map sorted", map[string]any{"b": 2, "a": "1"}, Object{{"a", "1"}, {"b", 2.0}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeAMF0(nil, tc.in)
			if err != nil {
				t.Fatal(err)
			}
			vals, err := DecodeAMF0(b)
			if err != nil {
				t.Fatal(err)
			}
			want := tc.want
			if want == nil {
				want = tc.in
			}
			if len(vals) != 1 || !reflect.DeepEqual(vals[0], want) {
				t.Errorf("decoded %#v, want %#v", vals, want)
			}
		})
	}
}

func TestAMF0KnownBytes(t *testing.T) {
	// connect(1, {app: "live"}) as ffmpeg/OBS send it.
	want := []byte{
		0x02, 0x00, 0x07, 'c', 'o', 'n', 'n', 'e', 'c', 't',
		0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
		0x03, 0x00, 0x03, 'a', 'p', 'p', 0x02, 0x00, 0x04, 'l', 'i', 'v', 'e', 0x00, 0x00, 0x09,
	}
	got, err := EncodeAMF0(nil, "connect", 1, Object{{"app", "live"}})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("encoded % x\nwant    % x", got, want)
	}
	// ECMA array count is a hint: 0 with two properties still decodes both.
	ecma := []byte{0x08, 0, 0, 0, 0, 0x00, 0x01, 'a', 0x01, 0x01, 0x00, 0x01, 'b', 0x05, 0x00, 0x00, 0x09}
	vals, err := DecodeAMF0(ecma)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(vals, []any{ECMAArray{{"a", true}, {"b", nil}}}) {
		t.Errorf("ecma decoded %#v", vals)
	}
	// A reference to the first object.
	ref := []byte{0x0a, 0, 0, 0, 2, 0x03, 0x00, 0x01, 'k', 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x09, 0x07, 0x00, 0x01}
	vals, err = DecodeAMF0(ref)
	if err != nil {
		t.Fatal(err)
	}
	o := Object{{"k", 2.0}}
	if !reflect.DeepEqual(vals, []any{[]any{o, o}}) {
		t.Errorf("reference decoded %#v", vals)
	}
	if v, n, err := DecodeAMF0Value([]byte{0x02, 0, 1, 'x', 0x05}); err != nil || v != "x" || n != 4 {
		t.Errorf("DecodeAMF0Value = %v %d %v", v, n, err)
	}
}

func TestAMF0DecodeErrors(t *testing.T) {
	deep := bytes.Repeat([]byte{0x0a, 0, 0, 0, 1}, 100)
	cases := map[string][]byte{
		"truncated number":       {0x00, 1, 2},
		"truncated string":       {0x02, 0, 10, 'a'},
		"long string too long":   {0x0c, 0xff, 0xff, 0xff, 0xff, 'a'},
		"object without end":     {0x03, 0x00, 0x01, 'a', 0x05},
		"unknown marker":         {0x42},
		"amf3 switch":            {0x11, 0x01},
		"reference out of range": {0x07, 0x00, 0x05},
		"strict array too long":  {0x0a, 0xff, 0xff, 0xff, 0xff},
		"nesting too deep":       deep,
		"self reference":         {0x03, 0x00, 0x01, 'a', 0x07, 0x00, 0x00, 0x00, 0x00, 0x09},
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := DecodeAMF0(in); !errors.Is(err, ErrAMF0) {
				t.Errorf("got %v, want ErrAMF0", err)
			}
		})
	}
	if _, err := EncodeAMF0(nil, struct{}{}); !errors.Is(err, ErrAMF0) {
		t.Errorf("encoding a struct: %v, want ErrAMF0", err)
	}
}

func FuzzAMF0Decode(f *testing.F) {
	seed, _ := EncodeAMF0(nil, "connect", 1.0, Object{{"app", "live"}, {"tcUrl", "rtmp://127.0.0.1/live"}},
		ECMAArray{{"width", 640.0}}, []any{true, nil, Undefined{}}, Date{Millis: 1}, XMLDocument("<x/>"),
		TypedObject{Class: "c", Props: Object{{"a", 1.0}}})
	f.Add(seed)
	f.Add([]byte{0x0a, 0, 0, 0, 2, 0x03, 0x00, 0x01, 'k', 0x00, 0x40, 0, 0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x09, 0x07, 0x00, 0x01})
	f.Fuzz(func(t *testing.T, data []byte) {
		d := amf0Decoder{b: data}
		var vals []any
		for d.pos < len(d.b) {
			v, err := d.value(0)
			if err != nil {
				if !errors.Is(err, ErrAMF0) {
					t.Fatalf("error %v does not wrap ErrAMF0", err)
				}
				return
			}
			vals = append(vals, v)
		}
		if d.usedRef {
			return // re-encoding inlines references; the size could explode
		}
		// Whatever decodes re-encodes, and the re-encoding is stable.
		enc1, err := EncodeAMF0(nil, vals...)
		if err != nil {
			t.Fatalf("re-encoding %#v: %v", vals, err)
		}
		vals2, err := DecodeAMF0(enc1)
		if err != nil {
			t.Fatalf("decoding the re-encoding: %v", err)
		}
		enc2, err := EncodeAMF0(nil, vals2...)
		if err != nil || !bytes.Equal(enc1, enc2) {
			t.Fatalf("re-encoding not stable: %v\n% x\n% x", err, enc1, enc2)
		}
	})
}

package rtmp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sort"
)

// AMF0 (Adobe Action Message Format, version 0) values, as decoded by DecodeAMF0:
//
//	number      float64          boolean   bool          string, long string  string
//	object      Object           null      nil           undefined            Undefined{}
//	ECMA array  ECMAArray        strict array []any      date                 Date
//	XML document XMLDocument     typed object TypedObject unsupported         Unsupported{}
//
// A reference (marker 0x07) decodes to the value it refers to.

// AMF0 type markers.
const (
	amf0Number      = 0x00
	amf0Boolean     = 0x01
	amf0String      = 0x02
	amf0Object      = 0x03
	amf0MovieClip   = 0x04
	amf0Null        = 0x05
	amf0Undefined   = 0x06
	amf0Reference   = 0x07
	amf0ECMAArray   = 0x08
	amf0ObjectEnd   = 0x09
	amf0StrictArray = 0x0a
	amf0Date        = 0x0b
	amf0LongString  = 0x0c
	amf0Unsupported = 0x0d
	amf0RecordSet   = 0x0e
	amf0XMLDocument = 0x0f
	amf0TypedObject = 0x10
	amf0AVMPlus     = 0x11
)

// ErrAMF0 is wrapped by every AMF0 decoding and encoding error.
var ErrAMF0 = errors.New("rtmp: bad AMF0")

// Property is one key/value pair of an Object or ECMAArray (order is kept).
type Property struct {
	Key   string
	Value any
}

// Object is an AMF0 anonymous object.
type Object []Property

// ECMAArray is an AMF0 associative array (used by onMetaData).
type ECMAArray []Property

// TypedObject is an AMF0 object with a class name.
type TypedObject struct {
	Class string
	Props Object
}

// Date is an AMF0 date: milliseconds since the Unix epoch and a (reserved) time zone.
type Date struct {
	Millis float64
	TZ     int16
}

// XMLDocument is an AMF0 XML document (a long string).
type XMLDocument string

// Undefined is the AMF0 undefined value.
type Undefined struct{}

// Unsupported is the AMF0 unsupported marker.
type Unsupported struct{}

// Get returns the value of key.
func (o Object) Get(key string) (any, bool) {
	for _, p := range o {
		if p.Key == key {
			return p.Value, true
		}
	}
	return nil, false
}

// String returns the string value of key, or "".
func (o Object) String(key string) string {
	v, _ := o.Get(key)
	s, _ := v.(string)
	return s
}

// Number returns the number value of key, or 0.
func (o Object) Number(key string) float64 {
	v, _ := o.Get(key)
	f, _ := v.(float64)
	return f
}

const amf0MaxDepth = 64

// DecodeAMF0 decodes consecutive AMF0 values until b is used up.
func DecodeAMF0(b []byte) ([]any, error) {
	d := amf0Decoder{b: b}
	var out []any
	for d.pos < len(d.b) {
		v, err := d.value(0)
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

// DecodeAMF0Value decodes one AMF0 value from the start of b and returns the bytes it used.
func DecodeAMF0Value(b []byte) (any, int, error) {
	d := amf0Decoder{b: b}
	v, err := d.value(0)
	return v, d.pos, err
}

type amf0Decoder struct {
	b       []byte
	pos     int
	refs    []any
	usedRef bool // a reference was followed (re-encoding would inline it)
}

func (d *amf0Decoder) errf(format string, a ...any) error {
	return fmt.Errorf("%w: "+format+" at offset %d", append([]any{ErrAMF0}, append(a, d.pos)...)...)
}

func (d *amf0Decoder) need(n int) error {
	if n < 0 || len(d.b)-d.pos < n {
		return d.errf("need %d bytes, have %d", n, len(d.b)-d.pos)
	}
	return nil
}

func (d *amf0Decoder) u8() (byte, error) {
	if err := d.need(1); err != nil {
		return 0, err
	}
	d.pos++
	return d.b[d.pos-1], nil
}

func (d *amf0Decoder) u16() (uint16, error) {
	if err := d.need(2); err != nil {
		return 0, err
	}
	d.pos += 2
	return binary.BigEndian.Uint16(d.b[d.pos-2:]), nil
}

func (d *amf0Decoder) u32() (uint32, error) {
	if err := d.need(4); err != nil {
		return 0, err
	}
	d.pos += 4
	return binary.BigEndian.Uint32(d.b[d.pos-4:]), nil
}

func (d *amf0Decoder) f64() (float64, error) {
	if err := d.need(8); err != nil {
		return 0, err
	}
	d.pos += 8
	return math.Float64frombits(binary.BigEndian.Uint64(d.b[d.pos-8:])), nil
}

func (d *amf0Decoder) str(n int) (string, error) {
	if err := d.need(n); err != nil {
		return "", err
	}
	d.pos += n
	return string(d.b[d.pos-n : d.pos]), nil
}

func (d *amf0Decoder) shortString() (string, error) {
	n, err := d.u16()
	if err != nil {
		return "", err
	}
	return d.str(int(n))
}

func (d *amf0Decoder) longString() (string, error) {
	n, err := d.u32()
	if err != nil {
		return "", err
	}
	if uint64(n) > uint64(len(d.b)-d.pos) {
		return "", d.errf("long string of %d bytes", n)
	}
	return d.str(int(n))
}

// props reads key/value pairs up to the object end marker (an empty key then 0x09).
func (d *amf0Decoder) props(depth int) ([]Property, error) {
	var ps []Property
	for {
		key, err := d.shortString()
		if err != nil {
			return nil, err
		}
		if key == "" {
			if err := d.need(1); err != nil {
				return nil, err
			}
			if d.b[d.pos] == amf0ObjectEnd {
				d.pos++
				return ps, nil
			}
		}
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		ps = append(ps, Property{Key: key, Value: v})
	}
}

func (d *amf0Decoder) value(depth int) (any, error) {
	if depth > amf0MaxDepth {
		return nil, d.errf("nesting deeper than %d", amf0MaxDepth)
	}
	m, err := d.u8()
	if err != nil {
		return nil, err
	}
	switch m {
	case amf0Number:
		return d.f64()
	case amf0Boolean:
		b, err := d.u8()
		return b != 0, err
	case amf0String:
		return d.shortString()
	case amf0LongString:
		return d.longString()
	case amf0XMLDocument:
		s, err := d.longString()
		return XMLDocument(s), err
	case amf0Null:
		return nil, nil
	case amf0Undefined:
		return Undefined{}, nil
	case amf0Unsupported:
		return Unsupported{}, nil
	case amf0Object:
		idx := len(d.refs)
		d.refs = append(d.refs, nil)
		ps, err := d.props(depth)
		if err != nil {
			return nil, err
		}
		d.refs[idx] = Object(ps)
		return Object(ps), nil
	case amf0ECMAArray:
		if _, err := d.u32(); err != nil { // count: a hint only, the end marker ends it
			return nil, err
		}
		idx := len(d.refs)
		d.refs = append(d.refs, nil)
		ps, err := d.props(depth)
		if err != nil {
			return nil, err
		}
		d.refs[idx] = ECMAArray(ps)
		return ECMAArray(ps), nil
	case amf0TypedObject:
		class, err := d.shortString()
		if err != nil {
			return nil, err
		}
		idx := len(d.refs)
		d.refs = append(d.refs, nil)
		ps, err := d.props(depth)
		if err != nil {
			return nil, err
		}
		t := TypedObject{Class: class, Props: Object(ps)}
		d.refs[idx] = t
		return t, nil
	case amf0StrictArray:
		n, err := d.u32()
		if err != nil {
			return nil, err
		}
		if uint64(n) > uint64(len(d.b)-d.pos) { // every value takes at least one byte
			return nil, d.errf("strict array of %d values", n)
		}
		idx := len(d.refs)
		d.refs = append(d.refs, nil)
		arr := make([]any, 0, n)
		for i := uint32(0); i < n; i++ {
			v, err := d.value(depth + 1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		d.refs[idx] = arr
		return arr, nil
	case amf0Date:
		ms, err := d.f64()
		if err != nil {
			return nil, err
		}
		tz, err := d.u16()
		return Date{Millis: ms, TZ: int16(tz)}, err
	case amf0Reference:
		i, err := d.u16()
		if err != nil {
			return nil, err
		}
		if int(i) >= len(d.refs) || d.refs[i] == nil {
			return nil, d.errf("reference %d to an unknown or unfinished value", i)
		}
		d.usedRef = true
		return d.refs[i], nil
	case amf0AVMPlus:
		return nil, d.errf("AMF3 values (AVM+ marker) are not supported")
	default:
		return nil, d.errf("unknown type marker 0x%02x", m)
	}
}

// EncodeAMF0 appends the AMF0 encoding of vals to dst. Accepted Go types: the decoded types
// above, any integer or float (as a number), map[string]any (an Object with sorted keys).
func EncodeAMF0(dst []byte, vals ...any) ([]byte, error) {
	var err error
	for _, v := range vals {
		if dst, err = encodeAMF0(dst, v, 0); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

func appendNumber(dst []byte, f float64) []byte {
	dst = append(dst, amf0Number)
	return binary.BigEndian.AppendUint64(dst, math.Float64bits(f))
}

func appendKey(dst []byte, k string) ([]byte, error) {
	if len(k) > math.MaxUint16 {
		return dst, fmt.Errorf("%w: property name of %d bytes", ErrAMF0, len(k))
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(k)))
	return append(dst, k...), nil
}

func appendProps(dst []byte, ps []Property, depth int) ([]byte, error) {
	var err error
	for _, p := range ps {
		if dst, err = appendKey(dst, p.Key); err != nil {
			return dst, err
		}
		if dst, err = encodeAMF0(dst, p.Value, depth+1); err != nil {
			return dst, err
		}
	}
	return append(dst, 0, 0, amf0ObjectEnd), nil
}

func encodeAMF0(dst []byte, v any, depth int) ([]byte, error) {
	if depth > amf0MaxDepth {
		return dst, fmt.Errorf("%w: nesting deeper than %d", ErrAMF0, amf0MaxDepth)
	}
	switch x := v.(type) {
	case nil:
		return append(dst, amf0Null), nil
	case Undefined:
		return append(dst, amf0Undefined), nil
	case Unsupported:
		return append(dst, amf0Unsupported), nil
	case bool:
		if x {
			return append(dst, amf0Boolean, 1), nil
		}
		return append(dst, amf0Boolean, 0), nil
	case float64:
		return appendNumber(dst, x), nil
	case float32:
		return appendNumber(dst, float64(x)), nil
	case int:
		return appendNumber(dst, float64(x)), nil
	case int8:
		return appendNumber(dst, float64(x)), nil
	case int16:
		return appendNumber(dst, float64(x)), nil
	case int32:
		return appendNumber(dst, float64(x)), nil
	case int64:
		return appendNumber(dst, float64(x)), nil
	case uint:
		return appendNumber(dst, float64(x)), nil
	case uint8:
		return appendNumber(dst, float64(x)), nil
	case uint16:
		return appendNumber(dst, float64(x)), nil
	case uint32:
		return appendNumber(dst, float64(x)), nil
	case uint64:
		return appendNumber(dst, float64(x)), nil
	case string:
		if len(x) > math.MaxUint16 {
			dst = append(dst, amf0LongString)
			dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
			return append(dst, x...), nil
		}
		dst = append(dst, amf0String)
		dst = binary.BigEndian.AppendUint16(dst, uint16(len(x)))
		return append(dst, x...), nil
	case XMLDocument:
		dst = append(dst, amf0XMLDocument)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		return append(dst, x...), nil
	case Date:
		dst = append(dst, amf0Date)
		dst = binary.BigEndian.AppendUint64(dst, math.Float64bits(x.Millis))
		return binary.BigEndian.AppendUint16(dst, uint16(x.TZ)), nil
	case Object:
		return appendProps(append(dst, amf0Object), x, depth)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		ps := make([]Property, len(keys))
		for i, k := range keys {
			ps[i] = Property{Key: k, Value: x[k]}
		}
		return appendProps(append(dst, amf0Object), ps, depth)
	case ECMAArray:
		dst = append(dst, amf0ECMAArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		return appendProps(dst, x, depth)
	case TypedObject:
		dst = append(dst, amf0TypedObject)
		dst, err := appendKey(dst, x.Class)
		if err != nil {
			return dst, err
		}
		return appendProps(dst, x.Props, depth)
	case []any:
		dst = append(dst, amf0StrictArray)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(x)))
		var err error
		for _, e := range x {
			if dst, err = encodeAMF0(dst, e, depth+1); err != nil {
				return dst, err
			}
		}
		return dst, nil
	default:
		return dst, fmt.Errorf("%w: cannot encode %T", ErrAMF0, v)
	}
}

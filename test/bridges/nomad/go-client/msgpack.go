package main

// A msgpack encoder for JSON values, writing what Nomad's cty encoder writes for a config:
// maps with sorted keys, an integer as an int when it fits int64, other numbers as float64,
// strings as str, null as nil. Write a number as a JSON string ("0.1") to send it as cty does
// when neither an int64 nor a float64 holds it exactly.

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strings"
)

// Msgpack encodes a JSON document.
func Msgpack(jsonText string) ([]byte, error) {
	dec := json.NewDecoder(strings.NewReader(jsonText))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("config %q is not JSON: %v", jsonText, err)
	}
	var buf bytes.Buffer
	if err := encodeValue(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func encodeValue(b *bytes.Buffer, v interface{}) error {
	switch x := v.(type) {
	case nil:
		b.WriteByte(0xc0)
	case bool:
		if x {
			b.WriteByte(0xc3)
		} else {
			b.WriteByte(0xc2)
		}
	case json.Number:
		if i, err := x.Int64(); err == nil {
			encodeInt(b, i)
			return nil
		}
		f, err := x.Float64()
		if err != nil {
			return fmt.Errorf("number %s: %v", x, err)
		}
		b.WriteByte(0xcb)
		_ = binary.Write(b, binary.BigEndian, math.Float64bits(f))
	case string:
		n := len(x)
		switch {
		case n < 32:
			b.WriteByte(0xa0 | byte(n))
		case n < 1<<8:
			b.WriteByte(0xd9)
			b.WriteByte(byte(n))
		case n < 1<<16:
			b.WriteByte(0xda)
			_ = binary.Write(b, binary.BigEndian, uint16(n))
		default:
			b.WriteByte(0xdb)
			_ = binary.Write(b, binary.BigEndian, uint32(n))
		}
		b.WriteString(x)
	case []interface{}:
		writeLen(b, len(x), 0x90, 0xdc, 0xdd)
		for _, e := range x {
			if err := encodeValue(b, e); err != nil {
				return err
			}
		}
	case map[string]interface{}:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		writeLen(b, len(keys), 0x80, 0xde, 0xdf)
		for _, k := range keys {
			_ = encodeValue(b, k)
			if err := encodeValue(b, x[k]); err != nil {
				return err
			}
		}
	default:
		return fmt.Errorf("cannot encode %T", v)
	}
	return nil
}

func encodeInt(b *bytes.Buffer, i int64) {
	switch {
	case i >= 0 && i < 128:
		b.WriteByte(byte(i))
	case i < 0 && i >= -32:
		b.WriteByte(byte(int8(i)))
	case i >= math.MinInt32 && i <= math.MaxInt32:
		b.WriteByte(0xd2)
		_ = binary.Write(b, binary.BigEndian, int32(i))
	default:
		b.WriteByte(0xd3)
		_ = binary.Write(b, binary.BigEndian, i)
	}
}

func writeLen(b *bytes.Buffer, n int, fix, b16, b32 byte) {
	switch {
	case n < 16:
		b.WriteByte(fix | byte(n))
	case n < 1<<16:
		b.WriteByte(b16)
		_ = binary.Write(b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(b32)
		_ = binary.Write(b, binary.BigEndian, uint32(n))
	}
}

package main

// Configs as Nomad sends them: it decodes the user's HCL through the plugin's spec, so the value
// it msgpack-encodes has every attribute of the spec, an attribute the user left out as null
// (or as its default, when the spec gives one). NomadConfig does the same to a JSON document.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	hclpb "taskhost.test/nomadproto/hclspec"
)

// NomadConfig is the msgpack Nomad sends for jsonText (HCL names) under spec.
func NomadConfig(spec *hclpb.Spec, jsonText string) ([]byte, error) {
	dec := json.NewDecoder(strings.NewReader(jsonText))
	dec.UseNumber()
	var v interface{}
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("config %q is not JSON: %v", jsonText, err)
	}
	if given, ok := v.(map[string]interface{}); ok && spec.GetObject() != nil {
		for name, attr := range spec.GetObject().GetAttributes() {
			if _, set := given[name]; !set {
				given[name] = absentValue(attr)
			}
		}
	}
	var buf bytes.Buffer
	if err := encodeValue(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// absentValue is what HCL decoding gives an attribute the user did not set: its default's
// literal (an HCL literal of a string, number or bool reads as JSON), a list block as an empty
// list, anything else null.
func absentValue(spec *hclpb.Spec) interface{} {
	switch {
	case spec.GetDefault() != nil:
		if lit := spec.GetDefault().GetDefault().GetLiteral(); lit != nil {
			dec := json.NewDecoder(strings.NewReader(lit.GetValue()))
			dec.UseNumber()
			var v interface{}
			if dec.Decode(&v) == nil {
				return v
			}
		}
		return nil
	case spec.GetBlockList() != nil, spec.GetBlockSet() != nil:
		return []interface{}{}
	default:
		return nil
	}
}

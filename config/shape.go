package config

import (
	"fmt"

	"github.com/pelletier/go-toml/v2/unstable"
)

// Bounds on the shape of an Enarx.toml, checked before it is decoded. A
// registry package's Enarx.toml is chosen by whoever published it, and
// both the host (enarx deploy) and the Keep parse it: within maxSize, a
// crafted file could otherwise cost minutes of CPU (go-toml's decoder is
// quadratic in the keys of one table) or all the machine's memory (a key
// of 500 000 dotted parts makes the position scan store every prefix).
// Real files are far below these bounds.
const (
	// maxDepth bounds a value's path: table header parts, dotted key
	// parts, and arrays and inline tables nested in a value
	// ("files[0].alpn[1]" is 4).
	maxDepth = 16
	// maxHeaders bounds the [table] and [[array]] headers.
	maxHeaders = 2 * maxFiles
	// maxTableKeys bounds the keys written in one table section (after
	// one header, or at the top) or one inline table: go-toml's decoder
	// is quadratic in them.
	maxTableKeys = 1024
	// maxValues bounds the keys (key = value, also inside inline tables)
	// plus the array elements.
	maxValues = 16 << 10
)

// checkShape refuses a document beyond maxDepth, maxHeaders, maxTableKeys
// or maxValues,
// naming the line where the bound is crossed. It only walks the syntax
// (linear time); a syntax error is left to the decoder, which reports it
// better.
func checkShape(name string, data []byte) error {
	s := &shape{name: name}
	s.p.Reset(data)
	depth := 0 // parts of the current table header
	keys := 0  // keys written in the current table section
	for s.p.NextExpression() {
		e := s.p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			s.headers++
			if s.headers > maxHeaders {
				return s.errf(e, "more than %d table headers ([table] or [[array]])", maxHeaders)
			}
			depth, keys = s.keyParts(e), 0
			if depth > maxDepth {
				return s.errf(e, "a table header of more than %d parts", maxDepth)
			}
		case unstable.KeyValue:
			if keys++; keys > maxTableKeys {
				return s.errf(e, "more than %d keys in one table", maxTableKeys)
			}
			if err := s.keyValue(depth, e); err != nil {
				return err
			}
		}
	}
	return nil
}

type shape struct {
	name    string
	p       unstable.Parser
	headers int
	values  int
}

func (s *shape) errf(n *unstable.Node, format string, args ...any) error {
	line := 0
	if n.Raw.Length > 0 {
		line = s.p.Shape(n.Raw).Start.Line
	}
	return &Error{File: s.name, Line: line, Msg: "file has " + fmt.Sprintf(format, args...) +
		"; an Enarx.toml is refused beyond that"}
}

func (s *shape) keyParts(n *unstable.Node) int {
	parts := 0
	for it := n.Key(); it.Next(); {
		parts++
	}
	return parts
}

// keyValue checks a key = value at depth (the parts of the table or
// inline table it is in).
func (s *shape) keyValue(depth int, kv *unstable.Node) error {
	s.values++
	if s.values > maxValues {
		return s.errf(kv, "more than %d keys and array elements", maxValues)
	}
	depth += s.keyParts(kv)
	if depth > maxDepth {
		return s.errf(kv, "a key nested more than %d levels deep", maxDepth)
	}
	return s.value(depth, kv, kv.Value())
}

// value checks the elements of an array and the keys of an inline table
// at depth; at is the key/value they belong to (for the line).
func (s *shape) value(depth int, at, v *unstable.Node) error {
	switch v.Kind {
	case unstable.Array:
		if depth+1 > maxDepth {
			return s.errf(at, "a value nested more than %d levels deep", maxDepth)
		}
		for it := v.Children(); it.Next(); {
			c := it.Node()
			if c.Kind == unstable.Comment {
				continue
			}
			s.values++
			if s.values > maxValues {
				return s.errf(at, "more than %d keys and array elements", maxValues)
			}
			if err := s.value(depth+1, at, c); err != nil {
				return err
			}
		}
	case unstable.InlineTable:
		keys := 0
		for it := v.Children(); it.Next(); {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				if keys++; keys > maxTableKeys {
					return s.errf(at, "more than %d keys in one table", maxTableKeys)
				}
				if err := s.keyValue(depth, c); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

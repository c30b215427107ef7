package config

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions maps field paths ("steward", "env.VAR1", "files[1]",
// "files[1].prot") to the 1-based line where they are first written, and
// records the order in which keys of the [env] table appear.
//
// go-toml's decoder does not report where a value came from, so this walks
// the document a second time with go-toml's position-aware parser. The
// document has already been fully validated by the decoder when this runs.
type positions struct {
	lines    map[string]int
	envOrder []string
}

// pathString renders path segments; index segments are "[n]" and are
// appended without a dot. Keys that are not bare TOML keys are quoted so that
// hostile key names cannot inject control characters into messages.
func pathString(segs []string) string {
	var b strings.Builder
	for i, s := range segs {
		if strings.HasPrefix(s, "[") {
			b.WriteString(s)
			continue
		}
		if i > 0 {
			b.WriteByte('.')
		}
		b.WriteString(quoteKey(s))
	}
	return b.String()
}

// quoteKey returns k as written in a TOML document: bare if possible,
// otherwise as a quoted string.
func quoteKey(k string) string {
	if k == "" {
		return `""`
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return strconv.Quote(k)
		}
	}
	return k
}

func indexSeg(i int) string { return "[" + strconv.Itoa(i) + "]" }

// scanPositions walks data (which must already be valid TOML).
func scanPositions(data []byte) (*positions, error) {
	pos := &positions{lines: map[string]int{}}
	// arrIdx holds the current element index of each array of tables,
	// keyed by the rendered path of the array.
	arrIdx := map[string]int{}
	envSeen := map[string]bool{}

	var p unstable.Parser
	p.Reset(data)
	line := func(r unstable.Range) int { return p.Shape(r).Start.Line }

	record := func(segs []string, l int) {
		k := pathString(segs)
		if _, ok := pos.lines[k]; !ok {
			pos.lines[k] = l
		}
		if len(segs) == 2 && segs[0] == "env" && !envSeen[segs[1]] {
			envSeen[segs[1]] = true
			pos.envOrder = append(pos.envOrder, segs[1])
		}
	}

	// resolve turns header/key parts into a path, inserting the current
	// element index after every array of tables along the way.
	resolve := func(base []string, keys []string, lastIsNewArrayElem bool) []string {
		segs := append([]string(nil), base...)
		for i, k := range keys {
			segs = append(segs, k)
			ps := pathString(segs)
			if i == len(keys)-1 && lastIsNewArrayElem {
				n, ok := arrIdx[ps]
				if ok {
					n++
				}
				arrIdx[ps] = n
				segs = append(segs, indexSeg(n))
				// A new element starts fresh nested arrays.
				for k := range arrIdx {
					if strings.HasPrefix(k, ps+"[") {
						delete(arrIdx, k)
					}
				}
				continue
			}
			if n, ok := arrIdx[ps]; ok {
				segs = append(segs, indexSeg(n))
			}
		}
		return segs
	}

	var walkValue func(segs []string, v *unstable.Node)
	walkKeyValue := func(base []string, kv *unstable.Node) {
		var keys []string
		l := 0
		it := kv.Key()
		for it.Next() {
			n := it.Node()
			if l == 0 {
				l = line(n.Raw)
			}
			keys = append(keys, string(n.Data))
		}
		segs := append(append([]string(nil), base...), keys...)
		for i := len(base) + 1; i <= len(segs); i++ {
			record(segs[:i], l)
		}
		walkValue(segs, kv.Value())
	}
	walkValue = func(segs []string, v *unstable.Node) {
		switch v.Kind {
		case unstable.Array:
			it := v.Children()
			i := 0
			for it.Next() {
				c := it.Node()
				if c.Kind == unstable.Comment {
					continue
				}
				es := append(append([]string(nil), segs...), indexSeg(i))
				if c.Raw.Length > 0 {
					record(es, line(c.Raw))
				}
				walkValue(es, c)
				i++
			}
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				c := it.Node()
				if c.Kind == unstable.KeyValue {
					walkKeyValue(segs, c)
				}
			}
		}
	}

	var table []string
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			walkKeyValue(table, e)
		case unstable.Table, unstable.ArrayTable:
			var keys []string
			l := 0
			it := e.Key()
			for it.Next() {
				n := it.Node()
				if l == 0 {
					l = line(n.Raw)
				}
				keys = append(keys, string(n.Data))
			}
			table = resolve(nil, keys, e.Kind == unstable.ArrayTable)
			for i := 1; i <= len(table); i++ {
				record(table[:i], l)
			}
		}
	}
	if err := p.Error(); err != nil {
		return nil, fmt.Errorf("scanning positions: %w", err)
	}
	return pos, nil
}

// line returns the line of path, or of its nearest recorded ancestor, or 0.
func (p *positions) line(path string) int {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i <= 0 {
			return 0
		}
		path = path[:i]
	}
}

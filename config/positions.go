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
	sc := &scanner{
		pos:     &positions{lines: map[string]int{}},
		arrIdx:  map[string]int{},
		envSeen: map[string]bool{},
	}
	sc.p.Reset(data)
	var table []string
	for sc.p.NextExpression() {
		e := sc.p.Expression()
		switch e.Kind {
		case unstable.KeyValue:
			sc.keyValue(table, e)
		case unstable.Table, unstable.ArrayTable:
			keys, l := sc.keyParts(e)
			table = sc.resolve(keys, e.Kind == unstable.ArrayTable)
			for i := 1; i <= len(table); i++ {
				sc.record(table[:i], l)
			}
		}
	}
	if err := sc.p.Error(); err != nil {
		return nil, fmt.Errorf("scanning positions: %w", err)
	}
	return sc.pos, nil
}

// scanner is the state of one scanPositions walk.
type scanner struct {
	p   unstable.Parser
	pos *positions
	// arrIdx holds the current element index of each array of tables,
	// keyed by the rendered path of the array.
	arrIdx  map[string]int
	envSeen map[string]bool
}

func (sc *scanner) line(r unstable.Range) int { return sc.p.Shape(r).Start.Line }

// record notes that the path segs is first written at line l (unless it
// was already), and the order of [env]'s keys.
func (sc *scanner) record(segs []string, l int) {
	k := pathString(segs)
	if _, ok := sc.pos.lines[k]; !ok {
		sc.pos.lines[k] = l
	}
	if len(segs) == 2 && segs[0] == "env" && !sc.envSeen[segs[1]] {
		sc.envSeen[segs[1]] = true
		sc.pos.envOrder = append(sc.pos.envOrder, segs[1])
	}
}

// keyParts returns the parts of n's key and the line of its first part.
func (sc *scanner) keyParts(n *unstable.Node) ([]string, int) {
	var keys []string
	l := 0
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if l == 0 {
			l = sc.line(k.Raw)
		}
		keys = append(keys, string(k.Data))
	}
	return keys, l
}

// resolve turns a table header's key parts into a path, inserting the
// current element index after every array of tables along the way; a
// new element of an array of tables (newArrayElem) gets the next index.
func (sc *scanner) resolve(keys []string, newArrayElem bool) []string {
	var segs []string
	for i, k := range keys {
		segs = append(segs, k)
		ps := pathString(segs)
		if i == len(keys)-1 && newArrayElem {
			n, ok := sc.arrIdx[ps]
			if ok {
				n++
			}
			sc.arrIdx[ps] = n
			segs = append(segs, indexSeg(n))
			// A new element starts fresh nested arrays.
			for k := range sc.arrIdx {
				if strings.HasPrefix(k, ps+"[") {
					delete(sc.arrIdx, k)
				}
			}
			continue
		}
		if n, ok := sc.arrIdx[ps]; ok {
			segs = append(segs, indexSeg(n))
		}
	}
	return segs
}

// keyValue records a key = value under base, and what its value holds.
func (sc *scanner) keyValue(base []string, kv *unstable.Node) {
	keys, l := sc.keyParts(kv)
	segs := append(append([]string(nil), base...), keys...)
	for i := len(base) + 1; i <= len(segs); i++ {
		sc.record(segs[:i], l)
	}
	sc.value(segs, kv.Value())
}

// value records the elements of an array and the keys of an inline table
// at path segs.
func (sc *scanner) value(segs []string, v *unstable.Node) {
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
				sc.record(es, sc.line(c.Raw))
			}
			sc.value(es, c)
			i++
		}
	case unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if c := it.Node(); c.Kind == unstable.KeyValue {
				sc.keyValue(segs, c)
			}
		}
	}
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

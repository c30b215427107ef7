package image

import "github.com/enarx-go/enarx/microvm/image/kmodcomp"

// The tests read xz- and zstd-compressed modules (fixtures, the installed
// kernel's), as enarx-keep-image does.
func init() { kmodcomp.Register(RegisterDecompressor) }

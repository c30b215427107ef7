package emulated

import (
	"os"
	"path/filepath"
)

func writeFile(dir string, b []byte) error {
	return os.WriteFile(filepath.Join(dir, SNPRootFile), b, 0o600)
}

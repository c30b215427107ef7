package config

import (
	"fmt"
	"strings"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse: it must never panic, and an
// accepted config must satisfy the invariants the runtime relies on.
func FuzzParse(f *testing.F) {
	f.Add([]byte(Template))
	f.Add([]byte(upstreamMixed))
	f.Add([]byte("env = { B = \"1\", A = \"2\" }\nfiles = [ { kind = \"stdin\" } ]\n"))
	f.Add([]byte("files = [ { kind = \"dir\", guest_path = \"/\", source = \"memory\", size = \"1MiB\" } ]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("Enarx.toml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "Enarx.toml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		for i, fl := range c.Files {
			if strings.Contains(fl.Name, ":") {
				t.Fatalf("files[%d] name %q contains ':'", i, fl.Name)
			}
			switch fl.Kind {
			case KindListen, KindConnect:
				if (fl.Prot == ProtTLS) != (fl.TLS != nil) {
					t.Fatalf("files[%d]: TLS options %v with prot %q", i, fl.TLS, fl.Prot)
				}
				if fl.Kind == KindConnect && fl.Port == 0 {
					t.Fatalf("files[%d]: connect without a port: %+v", i, fl)
				}
				// An empty host parses (as upstream), but never silently.
				if fl.Kind == KindConnect && fl.Host == "" && !warned(c, fmt.Sprintf("files[%d].host: is empty", i)) {
					t.Fatalf("files[%d]: empty connect host without a warning: %q", i, c.Warnings)
				}
			case KindDir:
				if err := checkDirInvariants(fl); err != nil {
					t.Fatalf("files[%d]: %v: %+v %+v", i, err, fl, fl.Dir)
				}
			case KindNull, KindStdin, KindStdout, KindStderr:
				if fl.Dir != nil {
					t.Fatalf("files[%d]: stdio with dir fields: %+v", i, fl)
				}
				if fl.Prot != "" || fl.TLS != nil {
					t.Fatalf("files[%d]: stdio with network fields: %+v", i, fl)
				}
			default:
				t.Fatalf("files[%d]: kind %q", i, fl.Kind)
			}
		}
		for _, e := range c.Env {
			if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") || strings.Contains(e.Value, "\x00") {
				t.Fatalf("bad env %q", e)
			}
		}
	})
}

// checkDirInvariants checks what the Keep and hostio rely on in an
// accepted kind = "dir" entry.
func checkDirInvariants(fl File) error {
	d := fl.Dir
	switch {
	case d == nil:
		return fmt.Errorf("dir entry without dir options")
	case fl.Prot != "" || fl.TLS != nil:
		return fmt.Errorf("dir entry with network fields")
	case d.GuestPath == "" || strings.ContainsRune(d.GuestPath, 0):
		return fmt.Errorf("guest path %q", d.GuestPath)
	}
	switch d.Source {
	case SourceMemory:
		if d.HostPath != "" || d.Key != "" || d.MinVersion != 0 || d.VolumeID != "" || d.Size == 0 || d.Size > MaxDirSize {
			return fmt.Errorf("memory dir with host fields or a bad size")
		}
	case SourceHost, SourceSealed:
		if !strings.HasPrefix(d.HostPath, "/") || d.Size != 0 {
			return fmt.Errorf("host path %q, size %d", d.HostPath, d.Size)
		}
		if d.Source == SourceHost && (d.Key != "" || d.MinVersion != 0 || d.VolumeID != "") {
			return fmt.Errorf("host dir with sealed fields")
		}
		if d.Source == SourceSealed && d.Key != KeySNP && !strings.HasPrefix(d.Key, KeyFilePrefix+"/") {
			return fmt.Errorf("sealed key %q", d.Key)
		}
		if d.VolumeID != "" && checkVolumeID(d.VolumeID) != nil {
			return fmt.Errorf("sealed volume_id %q", d.VolumeID)
		}
	default:
		return fmt.Errorf("source %q", d.Source)
	}
	return nil
}

// warned reports whether one of c's warnings contains s.
func warned(c *Config, s string) bool {
	for _, w := range c.Warnings {
		if strings.Contains(w, s) {
			return true
		}
	}
	return false
}

package main

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/spf13/pflag"
)

// applyConfigFile sets flags from a TOML file whose keys are the long flag
// names (upstream's `drawbridge @conf.toml`). Flags given on the command
// line win over the file.
func applyConfigFile(flags *pflag.FlagSet, path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("reading config file: %w", err)
	}
	var settings map[string]any
	if err := toml.Unmarshal(b, &settings); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		f := flags.Lookup(k)
		if f == nil || k == "help" || k == "version" {
			return fmt.Errorf("config file %s: unknown setting %q (keys are the long flag names, e.g. oidc-issuer)", path, k)
		}
		if f.Changed {
			continue
		}
		var v string
		switch x := settings[k].(type) {
		case string, bool, int64, float64:
			v = fmt.Sprint(x)
		default:
			return fmt.Errorf("config file %s: setting %q must be a string, number or boolean", path, k)
		}
		if err := flags.Set(k, v); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, k, err)
		}
	}
	return nil
}

// configArg returns the file of an "@FILE" argument.
func configArg(args []string) (string, error) {
	switch {
	case len(args) == 0:
		return "", nil
	case len(args) == 1 && strings.HasPrefix(args[0], "@") && len(args[0]) > 1:
		return args[0][1:], nil
	}
	return "", fmt.Errorf("unexpected arguments %q (the only argument allowed is @CONFIG.toml)", args)
}

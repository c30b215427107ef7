package snp

import (
	"github.com/google/uuid"

	"github.com/enarx-go/enarx/evidence/emulated"
)

func uuidMust(s string) uuid.UUID { return uuid.MustParse(s) }

func emulatedOpts() emulated.SNPOptions { return emulated.SNPOptions{} }

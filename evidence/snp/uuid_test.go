package snp

import "github.com/google/uuid"

func uuidMust(s string) uuid.UUID { return uuid.MustParse(s) }

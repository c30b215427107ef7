package config

// Template is the Enarx.toml written by `enarx config init`, byte for byte
// upstream's CONFIG_TEMPLATE (crates/enarx-config): stdio enabled, every
// other section commented out with "# " so that removing that prefix from
// each line yields a valid example.
const Template = `## Configuration for a WASI application in an Enarx Keep

## Arguments
# args = [
#      "--argument1",
#      "--argument2=foo"
# ]

## Steward
# steward = "https://attest.profian.com"

## Environment variables
# [env]
# VAR1 = "var1"
# VAR2 = "var2"

## Pre-opened file descriptors
[[files]]
kind = "stdin"

[[files]]
kind = "stdout"

[[files]]
kind = "stderr"

## A listen socket
# [[files]]
# name = "listen"
# kind = "listen"
# prot = "tls" # or prot = "tcp"
# port = 12345

## An outgoing connected socket
# [[files]]
# name = "stream"
# kind = "connect"
# prot = "tls" # or prot = "tcp"
# host = "localhost"
# port = 23456
`

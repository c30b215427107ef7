#!/usr/bin/python3
"""Writes a DER PKCS#10 CSR made by Python's `cryptography` (an implementation
independent of Go's crypto/x509) to stdout, in upstream Enarx's layout: empty
subject, one non-critical KVM evidence extension with an empty value.

Usage: make_csr.py p256|p384
"""
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ObjectIdentifier

KVM = ObjectIdentifier("1.3.6.1.4.1.58270.1.1")

curve, digest = {"p256": (ec.SECP256R1(), hashes.SHA256()),
                 "p384": (ec.SECP384R1(), hashes.SHA384())}[sys.argv[1]]
key = ec.generate_private_key(curve)
csr = (x509.CertificateSigningRequestBuilder()
       .subject_name(x509.Name([]))
       .add_extension(x509.UnrecognizedExtension(KVM, b""), critical=False)
       .sign(key, digest))
sys.stdout.buffer.write(csr.public_bytes(serialization.Encoding.DER))

"""The shared floor: small rules every package uses, importing none of them and no torch."""

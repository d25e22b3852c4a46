# c-core/tls: `make tls-cert` makes the self-signed test certificate var/tls/{cert,key}.pem.
.PHONY: tls-cert
tls-cert:
	tools/mkcert var/tls

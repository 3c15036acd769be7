#!/bin/sh
# ldap-writeback: a certfleet event command (docs/events.md) that writes a
# new certificate back to LDAP. Every entry under BASE whose
# associatedDomain is one of the certificate's names gets the certificate,
# DER-encoded, in userCertificate;binary, replacing the one it held.
#
#   [events.hooks.ldap]
#   type = "command"
#   command = ["/usr/local/lib/certfleet/ldap-writeback",
#              "ldaps://ldap.example.org", "cn=certfleet,ou=services,dc=example,dc=org",
#              "/etc/certfleet/ldap-password", "ou=sites,dc=example,dc=org"]
#   types = ["issued", "renewed"]
#
# PASSWORD_FILE holds the bind password alone, without a final newline
# (ldapmodify -y reads every byte): printf %s 'PASSWORD' > FILE; chmod 600 FILE.
# The entries need an object class that allows userCertificate, such as
# pkiUser (core.schema), beside domainRelatedObject (cosine.schema).
# Needs ldap-utils and openssl. Exit status 0 means written; anything else
# and certfleet tries the same event again later.
set -eu
if [ $# -ne 4 ]; then
	echo "usage: ldap-writeback URI BIND_DN PASSWORD_FILE BASE" >&2
	exit 2
fi
uri=$1 binddn=$2 pwfile=$3 base=$4
case ${CERTFLEET_EVENT_TYPE:-} in
issued | renewed) ;;
*) exit 0 ;; # the other events bring no new certificate
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '%s\n' "$CERTFLEET_EVENT_CERT_PEM" | openssl x509 -outform DER -out "$tmp/cert.der"
for name in $CERTFLEET_EVENT_NAMES; do
	# RFC 4515 section 3: a '*' in an assertion value is written \2a (a
	# wildcard name is a name here, not a pattern); DNS names hold no
	# other character a filter treats specially.
	value=$(printf '%s' "$name" | sed 's/\*/\\2a/g')
	ldapsearch -LLL -x -o ldif-wrap=no -H "$uri" -D "$binddn" -y "$pwfile" -b "$base" \
		"(associatedDomain=$value)" 1.1 >"$tmp/found"
	sed -n 's/^dn: //p' "$tmp/found" >"$tmp/dns"
	while IFS= read -r dn; do
		printf 'dn: %s\nchangetype: modify\nreplace: userCertificate;binary\nuserCertificate;binary:< file://%s\n' \
			"$dn" "$tmp/cert.der" | ldapmodify -x -H "$uri" -D "$binddn" -y "$pwfile" >/dev/null
		echo "ldap-writeback: $CERTFLEET_EVENT_CERTIFICATE serial $CERTFLEET_EVENT_SERIAL written to $dn"
	done <"$tmp/dns"
done

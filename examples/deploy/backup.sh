#!/usr/bin/env bash
# Back up op-proxy: a consistent dump of its MariaDB/MySQL database, then a copy of its keys/
# directory (signing keys, the pairwise-subject salt, the data-encryption key). Both are needed:
# the database without keys/ cannot verify a single token it holds.
#
#   backup.sh DESTINATION DATABASE KEYS_DIRECTORY [mariadb-dump options...]
#   backup.sh /srv/backup/op-proxy op_proxy /var/lib/op-proxy/keys --defaults-extra-file=/etc/op-proxy/backup.cnf
#
# The password comes from an option file ([client] host=, user=op_proxy_backup, password=), never the
# command line (--defaults-extra-file must be the first option). op-proxy keeps serving meanwhile:
# --single-transaction reads one snapshot without locking, and keys/ is copied after the dump, so it
# holds every key a dumped token was signed with.
# Prints the directory it made. Restore with restore.sh (docs/deploy.md).
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 DESTINATION DATABASE KEYS_DIRECTORY [mariadb-dump options...]" >&2; exit 2; }
destination=$1 database=$2 keys=$3
shift 3
[ -d "$keys" ] || { echo "$0: no keys directory at $keys" >&2; exit 1; }
umask 077
target="$destination/op-proxy-$(date -u +%Y%m%dT%H%M%SZ)"
mkdir -p "$target"
mariadb-dump "$@" --single-transaction --no-tablespaces --default-character-set=utf8mb4 \
  --triggers "$database" > "$target/database.sql.partial"
mv "$target/database.sql.partial" "$target/database.sql"
cp -a "$keys" "$target/keys"
echo "$target"

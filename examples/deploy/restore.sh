#!/usr/bin/env bash
# Restore an op-proxy backup made by backup.sh into an EMPTY database and an empty (or missing)
# keys directory. Stop every op-proxy process first; start them again afterwards (a newer op-proxy
# migrates the restored database at start, or run `op-proxy db upgrade` once before).
#
#   restore.sh BACKUP_DIRECTORY DATABASE KEYS_DIRECTORY [mariadb options...]
#   restore.sh /srv/backup/op-proxy/op-proxy-20261130T020000Z op_proxy /var/lib/op-proxy/keys --host=db1.example.ac.th --user=root
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 BACKUP_DIRECTORY DATABASE KEYS_DIRECTORY [mariadb options...]" >&2; exit 2; }
backup=$1 database=$2 keys=$3
shift 3
[ -f "$backup/database.sql" ] && [ -d "$backup/keys" ] || { echo "$0: $backup is not a backup.sh backup" >&2; exit 1; }
case $database in
  *[!A-Za-z0-9_]*|"") echo "$0: a database name of letters, digits and _ only" >&2; exit 1 ;;
esac
if [ -n "$(ls -A "$keys" 2>/dev/null)" ]; then
  echo "$0: $keys is not empty; move it aside first" >&2
  exit 1
fi
tables=$(mariadb "$@" --batch --skip-column-names -e \
  "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '$database'")
if [ "$tables" != "0" ]; then
  echo "$0: database $database is not empty; restore into a new, empty one" >&2
  exit 1
fi
mariadb "$@" --default-character-set=utf8mb4 "$database" < "$backup/database.sql"
umask 077
mkdir -p "$keys"
cp -a "$backup/keys/." "$keys/"
echo "restored $backup into database $database and $keys"

# kos boot-slot choice for the initramfs (busybox sh). Sourced by /init; also run by
# tests/image/test_bootslot.py against kos.platform.image.meta, which it must match.
# kos_next_boot DEV: reads META from DEV (a file or the META partition), prints the slot to
# boot (A or B) and writes the updated META back (one try spent, or the rollback).

kos_meta_values() {
  # key=value lines of a valid META block on stdout; nothing for a blank/torn block
  dd if="$1" bs=4096 count=1 2>/dev/null | tr -d '\000' | {
    read -r header || return 0
    [ "$header" = "KOSMETA1" ] || return 0
    body=""
    while read -r line; do
      if [ "$line" = "end" ]; then printf '%s' "$body"; return 0; fi
      body="$body$line
"
    done
    return 0
  }
}

kos_next_boot() {
  dev="$1"
  values="$(kos_meta_values "$dev")"
  active=A; fallback=""; tries=0; rest=""
  nl='
'
  oldifs="$IFS"; IFS="$nl"
  for line in $values; do
    key="${line%%=*}"; val="${line#*=}"
    [ "$key" = "$line" ] && continue
    case "$key" in *[!a-z0-9_-]*|"") continue ;; esac
    [ ${#key} -le 32 ] || continue
    case "$val" in *=*) continue ;; esac
    [ ${#val} -le 200 ] || continue
    case "$key" in
      active) active="$val" ;;
      fallback) fallback="$val" ;;
      tries) tries="$val" ;;
      *) rest="$rest$key=$val$nl" ;;
    esac
  done
  IFS="$oldifs"
  case "$active" in A|B) ;; *) active=A ;; esac
  case "$fallback" in A|B) [ "$fallback" = "$active" ] && fallback="" ;; *) fallback="" ;; esac
  case "$tries" in ""|*[!0-9]*) tries=0 ;; esac
  tries=$((tries + 0))
  if [ -n "$fallback" ]; then
    if [ "$tries" -gt 0 ]; then
      tries=$((tries - 1))
    else
      active="$fallback"; fallback=""
    fi
  fi
  kv="${rest}active=$active$nl"
  [ -n "$fallback" ] && kv="${kv}fallback=$fallback${nl}tries=$tries$nl"
  text="KOSMETA1$nl$(printf '%s' "$kv" | LC_ALL=C sort)${nl}end$nl"
  { printf '%s' "$text"; head -c $((4096 - ${#text})) /dev/zero; } | dd of="$dev" bs=4096 conv=notrunc 2>/dev/null  # no count: a pipe gives short reads
  sync
  echo "$active"
}

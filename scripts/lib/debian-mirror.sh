# shellcheck shell=bash
# Sourced by the project's scripts: the Debian mirror this machine already uses, read from its apt
# sources (deb822 first, then one-line sources), never a fixed host name.
#   debian_mirror [main|security]   prints the URI without a trailing slash; returns 1 when none is named
debian_mirror() {
  local kind=${1:-main} f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    if [ "$kind" = security ]; then
      uri=$(awk -v RS= '/Types:[^\n]*deb/ && /Suites:[^\n]*-security/ {
              if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { s = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", s); print s; exit } }' "$f")
    else
      # The first stanza whose Suites name a plain release (not -security).
      uri=$(awk -v RS= '/Types:[^\n]*deb/ && /Suites:[^\n]*(bookworm|trixie|sid|stable)( |\n|$)/ && !/-security/ {
              if (match($0, /URIs:[ \t]*[^ \t\n]+/)) { s = substr($0, RSTART, RLENGTH); sub(/URIs:[ \t]*/, "", s); print s; exit } }' "$f")
    fi
    [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    if [ "$kind" = security ]; then
      uri=$(awk '$1 == "deb" && $0 ~ /-security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f")
    else
      uri=$(awk '$1 == "deb" && $0 !~ /security/ { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f" |
        grep -m1 -i debian || true)
    fi
    [ -n "$uri" ] && { echo "${uri%/}"; return 0; }
  done
  return 1
}

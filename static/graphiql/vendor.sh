#!/usr/bin/env bash
# Re-vendors GraphiQL and what it needs from pinned npm releases, so the page
# at GET /graphql works with no internet. Run from anywhere; commit the result.
set -euo pipefail
cd "$(dirname "$0")"

GRAPHIQL=3.8.3
REACT=18.3.1
GRAPHQL_WS=6.4.2

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# unpack <package@version> <file in package> <name here>...
unpack() {
  local spec=$1
  shift
  local dir="$work/${spec//[@\/]/_}"
  mkdir -p "$dir"
  (cd "$dir" && npm pack --silent "$spec" >/dev/null && tar xzf ./*.tgz)
  while [ $# -gt 0 ]; do
    cp "$dir/package/$1" "$2"
    shift 2
  done
}

unpack "graphiql@$GRAPHIQL" graphiql.min.js graphiql.min.js graphiql.min.css graphiql.min.css \
  LICENSE LICENSE.graphiql
unpack "react@$REACT" umd/react.production.min.js react.production.min.js LICENSE LICENSE.react
unpack "react-dom@$REACT" umd/react-dom.production.min.js react-dom.production.min.js \
  LICENSE LICENSE.react-dom
unpack "graphql-ws@$GRAPHQL_WS" umd/graphql-ws.min.js graphql-ws.min.js LICENSE.md LICENSE.graphql-ws

cat > VERSIONS <<VERSIONS
graphiql $GRAPHIQL
react $REACT
react-dom $REACT
graphql-ws $GRAPHQL_WS
VERSIONS
sha256sum ./*.js ./*.css > SHA256SUMS
# The large files are also kept gzipped, served to browsers that take it
# (src/http/assets.rs); a test checks each .gz is its file compressed.
gzip -9 -n -k -f graphiql.min.js graphiql.min.css react-dom.production.min.js

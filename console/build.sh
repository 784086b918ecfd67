#!/usr/bin/env bash
# Rebuilds console/dist/ (committed, and compiled into the node binary): run after changing
# console/src/. Needs node and `npm ci` in console/ once.
set -euo pipefail
cd "$(dirname "$0")"
[ -d node_modules ] || npm ci --no-audit --no-fund
mkdir -p dist
npx esbuild src/app.ts --bundle --minify --format=iife --target=es2020 --outfile=dist/app.js
npx esbuild src/app.css --bundle --minify --loader:.png=dataurl --outfile=dist/app.css
cp src/index.html dist/index.html

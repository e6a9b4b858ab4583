#!/usr/bin/env bash
# Makes the spoken-English test corpus that tests/conftest.py's audio_dir fixture provides
# (tests/fixtures/corpus.py runs this script and caches its output, keyed by this file's bytes
# and the tools' versions). Needs espeak-ng, sox and ffmpeg (`make install` installs them with
# apt when root; Debian: apt-get install -y espeak-ng sox ffmpeg) and Python 3 ($PYTHON).
#   tools/make_test_corpus.sh OUTDIR
# Output: OUTDIR/*.wav (16 kHz mono s16): 12 utterances of 6-17 s in varied espeak-ng voices
# and speeds, two long files (73 s, 68.5 s) that cross Whisper's 30-s window, one MP3 and one
# FLAC copy, and OUTDIR/manifest.jsonl: {"file", "text", "duration_s"} per line.
# All sentences were written for this corpus (no third-party text). sox -D (no dither) keeps the
# output byte-for-byte repeatable for the same tool versions.
set -euo pipefail
OUT="${1:?usage: tools/make_test_corpus.sh OUTDIR}"
for tool in espeak-ng sox ffmpeg ffprobe; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: apt-get install -y espeak-ng sox ffmpeg" >&2; exit 1; }
done
mkdir -p "$OUT"
TMP="$(mktemp -d)"; trap 'rm -rf "$TMP"' EXIT
: > "$TMP/list.tsv"   # file <TAB> text

# say NAME VOICE SPEED TEXT -> OUT/NAME.wav at 16 kHz mono 16-bit
say() {
  local name="$1" voice="$2" speed="$3" text="$4"
  espeak-ng -v "$voice" -s "$speed" -w "$TMP/$name.raw.wav" "$text"
  sox -D "$TMP/$name.raw.wav" -r 16000 -c 1 -b 16 "$OUT/$name.wav"
  printf '%s\t%s\n' "$name.wav" "$text" >> "$TMP/list.tsv"
}

# ---- 12 single utterances, 5-20 s, varied voice and speed ----
say utt01_en-us_s175 en-us    175 "The city council met on Tuesday evening to discuss the new budget for public parks and libraries. Several residents spoke in favor of longer opening hours."
say utt02_en-gb_s160 en-gb    160 "Good morning everyone. Before we begin, please make sure your microphones are muted unless you are speaking. We have a lot to cover today."
say utt03_en+m3_s170 en+m3    170 "Heavy rain is expected across the northern region tonight, and drivers are advised to slow down and allow extra time for their journey."
say utt04_en+f2_s150 en+f2    150 "Thank you for joining the call. I would like to start with a quick update on the project timeline and then open the floor for questions."
say utt05_en-us+f3_s190 en-us+f3 190 "Scientists have discovered a new species of frog living high in the mountains. The small green animal was found near a quiet stream after weeks of careful searching."
say utt06_en-gb+m3_s140 en-gb+m3 140 "Let us move on to the next item on the agenda, which is the hiring plan for the support team."
say utt07_en-us_s130 en-us    130 "The weather was calm and bright, so the children spent the whole afternoon playing by the river."
say utt08_en+m3_s200 en+m3    200 "Our sales team reported strong results this quarter, driven mainly by new customers in the education and healthcare markets. We expect this trend to continue through the end of the year."
say utt09_en+f2_s165 en+f2    165 "The museum will reopen next month after a long renovation. Visitors will be able to see the restored paintings and a new gallery devoted to local history. Tickets can be booked online, and entry will remain free for students. The cafe on the top floor will also open again."
say utt10_en-gb_s180 en-gb    180 "Can everyone see my screen? This chart shows the number of support tickets we received each week, and as you can see, the numbers are going down."
say utt11_en-us+m1_s155 en-us+m1 155 "Please send me your comments on the draft report by Friday, so that I have time to review them before the board meeting."
say utt12_en-gb+f2_s170 en-gb+f2 170 "The train to the coast was delayed for almost an hour because of a signal problem, but most passengers waited patiently and the staff handed out free water. The company has promised to review its equipment and to offer a partial refund to everyone who was on board."

# ---- 2 long files (60-90 s): sentences synthesised one by one, joined with 0.6 s of silence ----
# long NAME VOICE SPEED SENTENCE...
long() {
  local name="$1" voice="$2" speed="$3"; shift 3
  local parts=() text="" i=0
  sox -D -n -r 16000 -c 1 -b 16 "$TMP/gap.wav" trim 0 0.6
  for s in "$@"; do
    i=$((i+1))
    espeak-ng -v "$voice" -s "$speed" -w "$TMP/${name}_$i.raw.wav" "$s"
    sox -D "$TMP/${name}_$i.raw.wav" -r 16000 -c 1 -b 16 "$TMP/${name}_$i.wav"
    [ $i -gt 1 ] && parts+=("$TMP/gap.wav")
    parts+=("$TMP/${name}_$i.wav")
    text="${text:+$text }$s"
  done
  sox -D "${parts[@]}" "$OUT/$name.wav"
  printf '%s\t%s\n' "$name.wav" "$text" >> "$TMP/list.tsv"
}

long long01_meeting_en-us_s165 en-us 165 \
  "Okay, let us get started, since most people have joined." \
  "The first topic today is the release of the new mobile application." \
  "The design team finished the last set of screens on Monday, and the developers have already started building them." \
  "We found a few problems with the login page during testing, but they should be fixed by the end of this week." \
  "The second topic is the customer survey." \
  "We sent it to our most active users, and so far about half of them have answered." \
  "Most people said they like the new layout, but many asked for a dark mode and better search." \
  "I suggest we add both of those requests to the plan for next quarter." \
  "The third topic is the office move." \
  "The new building is close to the station, which should make the daily commute easier for most of the team." \
  "Please pack your desk before Thursday and label every box with your name." \
  "Finally, a reminder that the quarterly review will take place next Wednesday afternoon." \
  "If you have any questions, send them to me by email, and I will answer them at the start of that meeting." \
  "Thank you all for your time, and have a great week."

long long02_news_en-gb+m3_s160 en-gb+m3 160 \
  "Here is the evening news." \
  "Farmers in the east of the country say the dry summer has reduced the wheat harvest for the second year in a row." \
  "Many of them are now planting crops that need less water, and some are building small ponds to store rain during the winter." \
  "In the capital, the new bridge over the river opened to traffic this morning after three years of construction." \
  "Officials said the bridge will cut travel times for thousands of people who cross the river every day." \
  "The local football club won its match on Saturday, moving up to second place in the league." \
  "The coach praised the young players and said the team is growing in confidence." \
  "Scientists at the national observatory have taken new pictures of a distant galaxy, showing bright clouds of gas where new stars are being born." \
  "They hope the images will help explain how galaxies change over time." \
  "And finally, the weather." \
  "Tomorrow will start cloudy with some light rain in the west, but it should become dry and sunny by the afternoon." \
  "That is all from us tonight. Good night."

# ---- compressed variants: one MP3 (of utt03) and one FLAC (of long02) ----
ffmpeg -hide_banner -loglevel error -y -i "$OUT/utt03_en+m3_s170.wav" -codec:a libmp3lame -b:a 48k "$OUT/utt03_en+m3_s170.mp3"
printf '%s\t%s\n' "utt03_en+m3_s170.mp3" "$(grep -P '^utt03_en\+m3_s170\.wav\t' "$TMP/list.tsv" | cut -f2-)" >> "$TMP/list.tsv"
ffmpeg -hide_banner -loglevel error -y -i "$OUT/long02_news_en-gb+m3_s160.wav" -codec:a flac "$OUT/long02_news_en-gb+m3_s160.flac"
printf '%s\t%s\n' "long02_news_en-gb+m3_s160.flac" "$(grep -P '^long02_news_en-gb\+m3_s160\.wav\t' "$TMP/list.tsv" | cut -f2-)" >> "$TMP/list.tsv"

# ---- manifest.jsonl: {"file","text","duration_s"}; duration from ffprobe ----
"${PYTHON:-python3}" - "$OUT" "$TMP/list.tsv" <<'EOF'
import json, subprocess, sys, os
out, lst = sys.argv[1], sys.argv[2]
with open(lst, encoding="utf-8") as f, open(os.path.join(out, "manifest.jsonl"), "w", encoding="utf-8") as m:
    for line in f:
        name, text = line.rstrip("\n").split("\t", 1)
        d = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration",
                            "-of", "default=nw=1:nk=1", os.path.join(out, name)],
                           capture_output=True, text=True, check=True).stdout.strip()
        m.write(json.dumps({"file": name, "text": text, "duration_s": round(float(d), 3)}) + "\n")
EOF
echo "wrote $(wc -l < "$OUT/manifest.jsonl") entries to $OUT/manifest.jsonl"

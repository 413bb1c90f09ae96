#!/usr/bin/env bash
# Run from the repository root: bench/first_answer.sh (clones HEAD into $CLONE, port 3300).
# newcomer timing: fresh clone, `make serve`, first answer to the README's first curl line
set -u
rm -rf ${CLONE:-/tmp/skyguard-first-answer} && git clone -q ${REPO:-$(pwd)} ${CLONE:-/tmp/skyguard-first-answer} && cd ${CLONE:-/tmp/skyguard-first-answer}
t0=$(date +%s)
(PORT=3300 make serve > ${CLONE:-/tmp/skyguard-first-answer}.log 2>&1 &)
while true; do
  if [ -f data/examples/morphology_y1_1.fits ] && curl -sf localhost:3300/readyz >/dev/null 2>&1; then break; fi
  sleep 5
  if [ $(( $(date +%s) - t0 )) -gt 2400 ]; then echo "timeout"; exit 1; fi
done
curl -s -F cutouts=@data/examples/morphology_y10_1.fits -F cutouts=@data/examples/morphology_y1_1.fits localhost:3300/morphology > /tmp/skyguard-first-answer.json
t1=$(date +%s)
echo "first answer after $((t1 - t0)) s"
cat /tmp/skyguard-first-answer.json | head -c 600; echo
curl -s -F cutouts=@data/examples/lsbg_des_1.fits localhost:3300/lsbg | head -c 300; echo
curl -s -F cutouts=@data/examples/photoz_deep_1.fits -F pdf=true localhost:3300/photoz | head -c 300; echo
curl -s -H 'content-type: application/json' -d "{\"images\": $(.venv/bin/python -c 'import json,numpy as n; print(json.dumps(n.zeros((1,3,64,64)).tolist()))')}" localhost:3300/lsbg_array | head -c 300; echo
curl -s localhost:3300/v1/models | python3 -m json.tool | head -5
head -c 3000 data/examples/morphology_y10_1.fits > /tmp/broken.fits && curl -s -F cutouts=@/tmp/broken.fits localhost:3300/morphology; echo

#!/usr/bin/env bash
# Take the console's screenshots again, into docs/console/ (the README shows
# them): the browser test writes them where SLUICE_SCREENSHOTS points.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
apt_install chromium chromium-driver
eval "$(bash scripts/services.sh up | sed 's/^/export /')"
SLUICE_SCREENSHOTS="$PWD/docs/console" cargo nextest run --test daemon -E 'test(/console/)'
say "screenshots in docs/console/"

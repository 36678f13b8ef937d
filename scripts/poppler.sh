#!/usr/bin/env bash
# Makes the PDF tests runnable and prints the directory of Debian's
# poppler-utils (pdftotext reads the monthly act's text back, pdftoppm
# renders its pages to PNG), installed when missing. Run by scripts/test.
set -euo pipefail
if ! command -v pdftotext >/dev/null || ! command -v pdftoppm >/dev/null; then
  echo "poppler.sh: installing poppler-utils from Debian's packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq poppler-utils >&2
fi
dirname "$(command -v pdftotext)"

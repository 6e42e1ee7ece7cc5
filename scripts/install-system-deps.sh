#!/usr/bin/env bash
# Debian packages the project needs: PostgreSQL 15 + PostGIS 3 (embedded and test databases),
# Node.js + npm (front-end packages), python3-venv, MapServer CGI `mapserv` (a real WFS 2.0 server
# for the sync tests), nginx (a real reverse proxy for the tests of links behind one), GDAL's command-line tools (`ogrinfo` in the API tests, `ogr2ogr` in the
# benchmark), Chromium and its WebDriver (the headless browser that tests the HTML map), and the
# DejaVu fonts map labels are drawn with. Installs only what is missing; needs root for apt-get.
set -euo pipefail

missing=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || missing+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/postgis.control ] || missing+=(postgresql-15-postgis-3)
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || missing+=(python3-venv)
command -v mapserv >/dev/null 2>&1 || missing+=(cgi-mapserver)
command -v ogrinfo >/dev/null 2>&1 || missing+=(gdal-bin)
[ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "missing system packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing system packages: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null

// Runs TrackHAR (https://github.com/tweaselORG/TrackHAR) over one HAR file, as its README shows:
// readFile -> JSON.parse -> process(har, {indicatorValues}). bench_peer.py copies this file next to
// the node_modules it installed TrackHAR into (ES modules resolve packages from the script's folder).
//
//   node trackhar_run.mjs FILE.har [profile.json]
//
// With a phonehome profile.json, its known values become TrackHAR indicator values, so TrackHAR
// also searches for them (plain, base64, URL-encoded) in requests no adapter handles, as phonehome
// does with --profile. Prints one JSON line: requests, handled, transmissions and the time of each
// step in ms (in-process; the benchmark times the whole process from outside).
import { readFile } from 'fs/promises';
import { process as processHar } from 'trackhar';

const t0 = performance.now();
const [harPath, profilePath] = process.argv.slice(2);
const text = await readFile(harPath, 'utf-8');
const t1 = performance.now();
const har = JSON.parse(text);
const t2 = performance.now();
let options = {};
if (profilePath) {
    const p = JSON.parse(await readFile(profilePath, 'utf-8'));
    const list = (v) => (v === undefined ? [] : Array.isArray(v) ? v : [v]);
    const ids = [...list(p.imei), ...list(p.android_id), ...list(p.oaid), ...list(p.serial), ...list(p.imsi), ...list(p.iccid)];
    const ind = {};
    if (ids.length) ind.deviceId = ids.map(String);
    if (p.advertising_id) ind.advertisingId = String(p.advertising_id);
    if (p.mac) ind.macAddress = list(p.mac).map(String);
    if (p.location) { ind.latitude = String(p.location[0]); ind.longitude = String(p.location[1]); }
    if (p.email) ind.userId = String(p.email);
    if (p.urls) ind.viewedPage = list(p.urls).map(String);
    if (p.search_terms) ind.viewedPageKeywords = list(p.search_terms).map(String);
    options = { indicatorValues: ind };
}
const results = await processHar(har, options);
const t3 = performance.now();
let handled = 0;
let transmissions = 0;
for (const r of results) {
    if (r) { handled += 1; transmissions += r.length; }
}
console.log(JSON.stringify({
    requests: results.length, handled, transmissions,
    ms: { read: t1 - t0, parse: t2 - t1, process: t3 - t2 },
}));

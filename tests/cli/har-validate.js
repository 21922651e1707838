// Validates HAR files against the HAR 1.2 schema with Debian's node-har-validator
// (package node-har-validator, module har-validator under /usr/share/nodejs).
// usage: NODE_PATH=/usr/share/nodejs node har-validate.js FILE...
// Prints "FILE: valid" or "FILE: invalid: <schema errors>"; exit 0 when every file is valid,
// 1 when one is not, 2 when the validator is missing or a file is not JSON.
'use strict';
const fs = require('fs');
let validator;
try {
    validator = require('har-validator');
} catch (e) {
    console.error('har-validate: module har-validator not found (apt-get install node-har-validator; NODE_PATH=/usr/share/nodejs)');
    process.exit(2);
}
(async () => {
    let rc = 0;
    for (const f of process.argv.slice(2)) {
        let data;
        try {
            data = JSON.parse(fs.readFileSync(f, 'utf8').replace(/^\uFEFF/, ''));
        } catch (e) {
            console.log(`${f}: not JSON: ${e.message}`);
            rc = Math.max(rc, 2);
            continue;
        }
        try {
            await validator.har(data);
            console.log(`${f}: valid`);
        } catch (e) {
            const errs = (e.errors || []).map(x => `${x.dataPath || x.instancePath || ''} ${x.message}`);
            console.log(`${f}: invalid: ${errs.join('; ') || e.message}`);
            rc = Math.max(rc, 1);
        }
    }
    process.exit(rc);
})();

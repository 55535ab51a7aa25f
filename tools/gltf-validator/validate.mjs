#!/usr/bin/env node
// Validate glTF 2.0 assets (.glb or .gltf) with the pinned Khronos glTF validator.
//
// Usage: node validate.mjs FILE.glb [FILE2 ...]
//
// For every file, prints one JSON object on its own line on stdout:
//   {"file", "uri", "validatorVersion", "mimeType", "numErrors", "numWarnings", "numInfos",
//    "numHints", "truncated", "errors": [{code, message, pointer?, offset?}], "warnings": [...]}
// A file the validator cannot even parse (unknown format) is reported the same way, with one
// error of code "VALIDATOR_REJECTED". A file that cannot be read gets {"file", "ioError"}.
//
// Exit status: 0 all files valid (warnings allowed), 1 some file has errors,
//              2 usage error or some file could not be read.
// External resources (e.g. a .bin or texture next to a .gltf) are read from the asset's folder.
// Runs fully offline once `npm ci` has installed node_modules.

import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);
const validator = require('gltf-validator');

const SEVERITY = { ERROR: 0, WARNING: 1 };

function usage() {
  process.stderr.write('usage: node validate.mjs FILE.glb [FILE2 ...]\n');
  process.exitCode = 2;
}

function issue(m) {
  const out = { code: m.code, message: m.message };
  if (m.pointer !== undefined) out.pointer = m.pointer;
  if (m.offset !== undefined) out.offset = m.offset;
  return out;
}

function externalLoader(assetPath) {
  const dir = path.dirname(path.resolve(assetPath));
  return async (uri) => {
    const target = path.resolve(dir, decodeURIComponent(uri));
    try {
      return new Uint8Array(await readFile(target));
    } catch (err) {
      // The validator turns a rejection into an IO_ERROR issue in the report.
      throw `cannot read external resource ${uri}: ${err.message}`;
    }
  };
}

async function validateFile(file) {
  let bytes;
  try {
    bytes = new Uint8Array(await readFile(file));
  } catch (err) {
    return { status: 2, summary: { file, ioError: err.message } };
  }
  const ext = path.extname(file).toLowerCase();
  const options = {
    uri: path.basename(file),
    maxIssues: 0, // unlimited: counts and lists are complete
    writeTimestamp: false,
    externalResourceFunction: externalLoader(file),
  };
  if (ext === '.glb') options.format = 'glb';
  else if (ext === '.gltf') options.format = 'gltf';

  let report;
  try {
    report = await validator.validateBytes(bytes, options);
  } catch (err) {
    const message = String(err && err.message ? err.message : err);
    return {
      status: 1,
      summary: {
        file,
        uri: options.uri,
        validatorVersion: validator.version(),
        mimeType: null,
        numErrors: 1,
        numWarnings: 0,
        numInfos: 0,
        numHints: 0,
        truncated: false,
        errors: [{ code: 'VALIDATOR_REJECTED', message }],
        warnings: [],
      },
    };
  }
  const issues = report.issues || {};
  const messages = issues.messages || [];
  const summary = {
    file,
    uri: report.uri,
    validatorVersion: report.validatorVersion,
    mimeType: report.mimeType ?? null,
    numErrors: issues.numErrors ?? 0,
    numWarnings: issues.numWarnings ?? 0,
    numInfos: issues.numInfos ?? 0,
    numHints: issues.numHints ?? 0,
    truncated: Boolean(issues.truncated),
    errors: messages.filter((m) => m.severity === SEVERITY.ERROR).map(issue),
    warnings: messages.filter((m) => m.severity === SEVERITY.WARNING).map(issue),
  };
  return { status: summary.numErrors > 0 ? 1 : 0, summary };
}

async function main(argv) {
  const files = argv.slice(2);
  if (files.length === 0 || files.includes('-h') || files.includes('--help')) {
    usage();
    return;
  }
  let exit = 0;
  for (const file of files) {
    const { status, summary } = await validateFile(file);
    process.stdout.write(JSON.stringify(summary) + '\n');
    if (status === 2) {
      process.stderr.write(`validate.mjs: cannot read ${file}: ${summary.ioError}\n`);
    }
    exit = Math.max(exit, status);
  }
  process.exitCode = exit;
}

main(process.argv).catch((err) => {
  process.stderr.write(`validate.mjs: ${err && err.stack ? err.stack : err}\n`);
  process.exitCode = 2;
});

#!/usr/bin/env node
// A `solc` command-line stand-in built on solcjs (npm `solc`), for py-solc-x / ape-solidity.
// It answers the two calls they make: `--version` and `--standard-json` (input on stdin),
// honouring `--base-path`, `--include-path` and `--allow-paths` for imports. Nothing else.
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require(path.join(__dirname, "node_modules", "solc"));

const args = process.argv.slice(2);

function optionValues(name) {
  const values = [];
  for (let i = 0; i < args.length; i++) {
    if (args[i] === name && i + 1 < args.length) values.push(args[++i]);
    else if (args[i].startsWith(name + "=")) values.push(args[i].slice(name.length + 1));
  }
  return values;
}

function nativeVersion() {
  // solcjs reports "0.8.37+commit.f401782d.Emscripten.clang"; tools expect the native form.
  return solc.version().replace(".Emscripten.clang", ".Linux.g++");
}

if (args.includes("--version")) {
  process.stdout.write("solc, the solidity compiler commandline interface\nVersion: " + nativeVersion() + "\n");
  process.exit(0);
}

if (!args.includes("--standard-json")) {
  process.stderr.write("solc-wrapper: only --version and --standard-json are supported\n");
  process.exit(2);
}

const roots = [...optionValues("--base-path"), ...optionValues("--include-path"), process.cwd()];
const allowed = optionValues("--allow-paths").flatMap((p) => p.split(","));

function findImport(importPath) {
  const candidates = path.isAbsolute(importPath)
    ? [importPath]
    : roots.concat(allowed).map((root) => path.resolve(root, importPath));
  for (const candidate of candidates) {
    try {
      return { contents: fs.readFileSync(candidate, "utf8") };
    } catch (_) {
      /* try the next root */
    }
  }
  return { error: "File not found: " + importPath + " (searched " + candidates.join(", ") + ")" };
}

const input = fs.readFileSync(0, "utf8");
process.stdout.write(solc.compile(input, { import: findImport }));

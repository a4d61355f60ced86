// Persistent tsc for rewardranker: one request per line on stdin (tsc arguments separated by TAB), one answer
// per line on stdout: "<exit code>\t<diagnostics with \ and newlines escaped>". Runs inside the sandbox.
// Each request is its own program, checked and emitted exactly as `tsc ARGS` would (same option parsing, same
// diagnostic order and exit status); only the parsed lib .d.ts files are kept between requests, and the lib
// files' own semantic check (the bulk of tsc's time; it finds nothing in an unmodified lib) is skipped unless
// the program declares a top-level name that a lib file also declares, or has a module/global declaration:
// only such declarations can merge into lib declarations and make a lib file report an error.
'use strict';
const path = require('path');
const readline = require('readline');
const ts = require(process.argv[2]);

const libDir = path.dirname(ts.getDefaultLibFilePath({}));
const libCache = new Map();
const formatHost = {
  getCanonicalFileName: (f) => f, getCurrentDirectory: () => process.cwd(), getNewLine: () => ts.sys.newLine,
};

let libNames = null;  // top-level names declared by the lib files

function declaredNames(sf, out) {
  for (const st of sf.statements) {
    if (ts.isVariableStatement(st)) {
      for (const d of st.declarationList.declarations) bindingNames(d.name, out);
    } else if (ts.isModuleDeclaration(st)) {
      out.add('\0module');
    } else if (st.name && st.name.text !== undefined) {
      out.add(st.name.text);
    }
  }
  return out;
}

function bindingNames(node, out) {
  if (ts.isIdentifier(node)) out.add(node.text);
  else for (const e of node.elements || []) if (e.name) bindingNames(e.name, out);
}

function needsLibCheck(program) {
  const libs = program.getSourceFiles().filter((f) => path.dirname(f.fileName) === libDir);
  if (libNames === null) {
    libNames = new Set();
    for (const f of libs) declaredNames(f, libNames);
  }
  for (const f of program.getSourceFiles()) {
    if (path.dirname(f.fileName) === libDir) continue;
    for (const name of declaredNames(f, new Set())) if (name === '\0module' || libNames.has(name)) return true;
  }
  return false;
}

function semanticDiagnostics(program) {
  const all = needsLibCheck(program);
  const out = [];
  for (const f of program.getSourceFiles()) {
    if (all || path.dirname(f.fileName) !== libDir) out.push(...program.getSemanticDiagnostics(f));
  }
  return out;
}

function compile(args) {
  const cmd = ts.parseCommandLine(args);
  const host = ts.createCompilerHost(cmd.options);
  const getSourceFile = host.getSourceFile;
  host.getSourceFile = (fileName, languageVersion, onError, shouldCreate) => {
    if (path.dirname(fileName) !== libDir) return getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate);
    const key = fileName + '|' + JSON.stringify(languageVersion);
    if (!libCache.has(key)) libCache.set(key, getSourceFile.call(host, fileName, languageVersion, onError, shouldCreate));
    return libCache.get(key);
  };
  const program = ts.createProgram({ rootNames: cmd.fileNames, options: cmd.options, host,
                                     configFileParsingDiagnostics: cmd.errors });
  // Mirrors tsc's emitFilesAndReportErrors.
  const diags = program.getConfigFileParsingDiagnostics().slice();
  const n0 = diags.length;
  diags.push(...program.getSyntacticDiagnostics());
  if (diags.length === n0) {
    diags.push(...program.getOptionsDiagnostics());
    diags.push(...program.getGlobalDiagnostics());
    if (diags.length === n0) diags.push(...semanticDiagnostics(program));
  }
  // Emitting with no target file would type-check every lib file first; the lib files emit nothing, so
  // emitting each program file on its own writes the same output.
  const emit = { emitSkipped: false, diagnostics: [] };
  for (const f of program.getSourceFiles()) {
    if (path.dirname(f.fileName) === libDir || f.isDeclarationFile) continue;
    const r = program.emit(f);
    emit.emitSkipped = emit.emitSkipped || r.emitSkipped;
    emit.diagnostics.push(...r.diagnostics);
  }
  diags.push(...emit.diagnostics);
  const sorted = ts.sortAndDeduplicateDiagnostics(diags);
  const rc = emit.emitSkipped && sorted.length > 0 ? 1 : sorted.length > 0 ? 2 : 0;  // tsc counts every category
  return [rc, ts.formatDiagnostics(sorted, formatHost)];
}

const rl = readline.createInterface({ input: process.stdin, terminal: false });
rl.on('line', (line) => {
  let rc, text;
  try {
    [rc, text] = compile(line.split('\t'));
  } catch (e) {
    [rc, text] = [3, String(e && e.stack || e)];
  }
  text = text.slice(0, 4096).replace(/\\/g, '\\\\').replace(/\r/g, '').replace(/\n/g, '\\n');
  process.stdout.write(rc + '\t' + text + '\n');
});

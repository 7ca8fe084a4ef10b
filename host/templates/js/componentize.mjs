// Run by `wanwatch plugin build` for JavaScript plugins: ComponentizeJS's
// API (its CLI mishandles paths). Arguments: the module of ComponentizeJS,
// the source, the WIT directory, the output file.
//
// The component is built from a glue module beside the output, which
// re-exports the policy's callbacks so that whatever one throws reaches the
// host as an error string: ComponentizeJS takes only a thrown string, and
// traps on an `Error` or any other value, losing its message.
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';

const [module, sourcePath, witPath, out] = process.argv.slice(-4);
const { componentize } = await import(module);

// The callbacks of the project's own contract (its wit/policy.wit), named
// as ComponentizeJS names them (camelCase): a project made for 0.1 keeps
// building as 0.1, one made for 0.2 gets `onLinkQuality` too.
const wit = await readFile(path.join(witPath, 'policy.wit'), 'utf8');
const CALLBACKS = [...wit.matchAll(/^\s*export\s+([a-z][a-z0-9-]*)\s*:\s*func\b/gm)].map(([, name]) =>
  name.replace(/-([a-z0-9])/g, (_, c) => c.toUpperCase()),
);
const policy = path.relative(path.dirname(out), sourcePath).split(path.sep).join('/');
const glue = path.join(path.dirname(out), `${path.basename(out)}.glue.js`);
await writeFile(glue, `import * as policy from ${JSON.stringify(policy.startsWith('.') ? policy : `./${policy}`)};

// An Error as "Name: message" and the policy's frames of its stack (those
// from this module on are glue); any other value as JSON, or as String()
// when it has none (a BigInt, a cycle).
function errorText(e) {
  if (typeof e === 'string') return e;
  if (e instanceof Error) {
    const frames = String(e.stack ?? '').split('\\n');
    const glue = frames.findIndex((frame) => frame.includes(${JSON.stringify(path.basename(glue))}));
    const stack = frames.slice(0, glue < 0 ? frames.length : glue).filter(Boolean);
    return [\`\${e.name}: \${e.message}\`, ...stack].join('\\n');
  }
  try {
    const json = JSON.stringify(e);
    if (json !== undefined) return json;
  } catch {}
  return String(e);
}

function callback(name) {
  const f = policy[name];
  if (typeof f !== 'function') throw new Error(\`policy.js does not export the function \${name}\`);
  return (...args) => {
    try {
      return f(...args);
    } catch (e) {
      throw errorText(e);
    }
  };
}

${CALLBACKS.map((name) => `export const ${name} = callback('${name}');`).join('\n')}
`);
try {
  const { component } = await componentize({
    sourcePath: glue,
    witPath,
    worldName: 'policy',
    // A policy has no use for HTTP; the host does not offer it.
    disableFeatures: ['http', 'fetch-event'],
  });
  await writeFile(out, component);
} finally {
  await rm(glue, { force: true });
}

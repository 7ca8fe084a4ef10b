// Run by `wanwatch plugin build` for JavaScript plugins: ComponentizeJS's
// API (its CLI mishandles paths). Arguments: the module of ComponentizeJS,
// the source, the WIT directory, the output file.
import { writeFile } from 'node:fs/promises';

const [module, sourcePath, witPath, out] = process.argv.slice(-4);
const { componentize } = await import(module);
const { component } = await componentize({
  sourcePath,
  witPath,
  worldName: 'policy',
  // A policy has no use for HTTP; the host does not offer it.
  disableFeatures: ['http', 'fetch-event'],
});
await writeFile(out, component);

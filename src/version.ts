import { ownPackage } from './own-package.js';

/** The package version, from its package.json. */
export const VERSION = ownPackage()?.version ?? '0.0.0';

import js from '@eslint/js';
import reactHooks from 'eslint-plugin-react-hooks';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'scratch/', 'eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/consistent-type-imports': 'error',
      // Fastify plugins are async by contract, whether or not they await.
      '@typescript-eslint/require-await': 'off',
      'no-restricted-imports': 'off',
    },
  },
  {
    // The web UI: React's rules of hooks on top of the rest.
    files: ['ui/**/*.{ts,tsx}'],
    ...reactHooks.configs.flat['recommended-latest'],
  },
  {
    // The policy engine is pure: no I/O, no Node built-ins, nothing from the outer rings.
    files: ['src/policy/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['node:*', 'fs', 'child_process', 'net', 'http'],
              message: 'src/policy is pure: no I/O.',
            },
            {
              group: [
                '**/cli/**',
                '**/host/**',
                '**/policy-files/**',
                '**/server/**',
                '**/agent/**',
                '**/store/**',
                '**/lab/**',
              ],
              message:
                'Dependencies point inward: the policy engine imports nothing from the outer rings.',
            },
          ],
        },
      ],
    },
  },
);

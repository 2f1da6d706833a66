// Lint rules: typescript-eslint's strict type-checked set plus the project's boundaries
// (which module may touch the network, child processes or the Kubernetes client).
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["node_modules/**", "coverage/**", "scratch/**", "test/fixtures/*.cjs"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/consistent-type-imports": "error",
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            { from: "package", package: "node:test", name: ["describe", "it", "test", "suite", "before", "after", "beforeEach", "afterEach"] },
          ],
        },
      ],
      // @kubernetes/client-node declares its API objects as classes, but they are plain JSON
      // data on the wire and in its own examples; object literals are the idiomatic way.
      "@typescript-eslint/no-unsafe-class-instance-assignment": "off",
      "@typescript-eslint/no-misused-spread": "off",
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      // `const { dropped, ...rest } = object` is how a field is left out of a copy.
      "@typescript-eslint/no-unused-vars": ["error", { ignoreRestSiblings: true }],
      "max-lines": ["error", { max: 400, skipBlankLines: true, skipComments: true }],
      "max-depth": ["error", 4],
      "no-restricted-imports": [
        "error",
        {
          paths: [
            { name: "node:child_process", message: "Spawn processes through src/shared/exec.ts." },
          ],
        },
      ],
    },
  },
  {
    files: ["src/shared/exec.ts", "src/shared/process.ts"],
    rules: { "no-restricted-imports": "off" },
  },
  {
    files: ["**/*.test.ts", "test/**/*.ts"],
    rules: {
      "@typescript-eslint/no-non-null-assertion": "off",
      "max-lines": "off",
      "no-restricted-imports": "off",
    },
  },
  {
    files: ["**/*.js"],
    ...tseslint.configs.disableTypeChecked,
  },
);

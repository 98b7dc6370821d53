// Assertion tests of the synthesized templates (aws-cdk-lib/assertions).
module.exports = {
  testEnvironment: 'node',
  roots: ['<rootDir>/test'],
  testMatch: ['**/*.test.ts'],
  transform: {
    '^.+\\.tsx?$': 'ts-jest',
  },
  // Synthesizing the stacks (and checking them with cdk-nag) takes a few seconds.
  testTimeout: 120000,
};

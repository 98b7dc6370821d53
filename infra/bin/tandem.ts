#!/usr/bin/env node
// `cdk synth` / `cdk deploy` entry point: the stacks are built in lib/app.ts.
import { buildApp } from '../lib/app';

buildApp();

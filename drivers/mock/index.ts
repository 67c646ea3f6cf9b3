/**
 * Entry module of the built-in mock driver. The default export is a factory so that each worker
 * (and each test that imports it) gets a driver with no tasks and no subscribers.
 */
import { MockDriver } from './mock-driver.js';

export default function createMockDriver(): MockDriver {
  return new MockDriver();
}

// A value set later by a callback, read by a test that drives a fake clock meanwhile.
export class Latch<T> {
  private value: T | undefined;

  readonly set = (value: T): void => {
    this.value = value;
  };

  get(): T | undefined {
    return this.value;
  }
}

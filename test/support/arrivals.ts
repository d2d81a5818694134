// What a test socket has received and not yet taken (lines, messages), taken one at a time with a deadline.
export class Arrivals<T> {
  private readonly items: T[] = [];
  private wake: (() => void) | undefined;
  private ended = false;

  /** `what` names an item in the timeout message ("line", "QMP message"). */
  constructor(private readonly what: string) {}

  push(item: T): void {
    this.items.push(item);
    this.wake?.();
  }

  /** No more items will come (the connection closed). */
  end(): void {
    this.ended = true;
    this.wake?.();
  }

  /** The next item; rejects after `timeoutMs`, or once the connection has closed with nothing left. */
  async next(timeoutMs: number): Promise<T> {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length === 0) {
      if (this.ended) throw new Error('the connection was closed');
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${this.what} within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = undefined;
    }
    return this.items.shift() as T;
  }
}

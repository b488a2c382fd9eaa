import { Component, type ReactNode } from 'react';

/** Keeps a failure inside one screen from blanking all of Studio, and says so. */
export class ErrorBoundary extends Component<{ children: ReactNode; resetKey: string }, { error: Error | null; key: string }> {
  state = { error: null as Error | null, key: this.props.resetKey };

  static getDerivedStateFromError(error: Error) {
    return { error };
  }

  static getDerivedStateFromProps(props: { resetKey: string }, state: { error: Error | null; key: string }) {
    // Moving to another screen clears the failure.
    return props.resetKey !== state.key ? { error: null, key: props.resetKey } : null;
  }

  render() {
    if (this.state.error) {
      return (
        <div className="notice error" role="alert">
          <p>This screen failed to show: {this.state.error.message}. Reload the page, or go back.</p>
        </div>
      );
    }
    return this.props.children;
  }
}

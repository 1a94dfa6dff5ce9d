package org.apache.samza.azure.jni;

/**
 * Operator check: {@code java -cp <our jar>:<samza and slf4j jars>
 * org.apache.samza.azure.jni.NativeSelfCheck} loads the native library exactly as a job would and
 * prints where it came from. With {@code --shutdown} it also stops the native runtime and checks
 * that later calls fail cleanly instead of hanging.
 */
public final class NativeSelfCheck {
  private NativeSelfCheck() {}

  public static void main(String[] args) {
    Native.ensureLoaded();
    System.out.println("platform=" + NativeLibrary.platform());
    System.out.println("libc=" + NativeLibrary.libc());
    System.out.println("loadedFrom=" + NativeLibrary.loadedFrom());
    System.out.println("version=" + Native.version());
    Native.noop();
    System.out.println("roundTrip=ok");
    if (args.length > 0 && args[0].equals("--shutdown")) {
      Native.shutdownRuntime(2000);
      System.out.println("runtimeRunning=" + Native.isRuntimeRunning());
      try {
        Native.noop();
        System.out.println("afterShutdown=no-error");
      } catch (RuntimeException e) {
        System.out.println("afterShutdown=" + e.getClass().getSimpleName() + ": " + e.getMessage());
      }
    }
  }
}

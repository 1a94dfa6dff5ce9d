package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.apache.samza.azure.errors.NativeLibraryException;
import org.junit.Test;

/**
 * The library and {@link Native} agree on every native method, and a difference on either side is
 * reported by name. (A Rust entry that {@link Native} lacks or declares differently already fails
 * the load in {@code RegisterNatives}; see docs/native.md.)
 */
public class NativeContractTest {

  /** Stand-ins for a {@link Native} that drifted from the library. */
  static final class Drifted {
    static native long[] storageStats(int handle);

    static native void notInTheLibrary(String[] keys, byte[] body, boolean flag);
  }

  private static Set<String> implemented() {
    Native.ensureLoaded();
    return new TreeSet<>(Arrays.asList(Native.registeredNatives()));
  }

  @Test
  public void theLibraryImplementsExactlyTheDeclaredNatives() {
    Set<String> declared = NativeContract.declared(Native.class);
    assertEquals(implemented(), declared);
    assertTrue("" + declared, declared.size() >= 60);
  }

  @Test
  public void descriptorsAreJnis() throws Exception {
    assertEquals(
        "(J)[J",
        NativeContract.descriptor(Native.class.getDeclaredMethod("storageStats", long.class)));
    assertEquals(
        "(JLjava/lang/String;Ljava/lang/String;[BLjava/lang/String;Ljava/lang/String;)"
            + "Ljava/lang/String;",
        NativeContract.descriptor(
            Native.class.getDeclaredMethod(
                "docReplace",
                long.class,
                String.class,
                String.class,
                byte[].class,
                String.class,
                String.class)));
    assertEquals(
        "([Ljava/lang/String;[BZ)V",
        NativeContract.descriptor(
            Drifted.class.getDeclaredMethod(
                "notInTheLibrary", String[].class, byte[].class, boolean.class)));
  }

  @Test
  public void aChangedOrMissingMethodIsNamed() {
    List<String> wrong =
        NativeContract.mismatches(NativeContract.declared(Drifted.class), implemented());
    assertTrue(
        wrong.toString(), wrong.contains("declared in Java, not implemented: storageStats(I)[J"));
    assertTrue(
        wrong.toString(),
        wrong.contains(
            "declared in Java, not implemented: notInTheLibrary([Ljava/lang/String;[BZ)V"));
    assertTrue(
        wrong.toString(), wrong.contains("implemented, not declared in Java: storageStats(J)[J"));
    try {
      NativeContract.check(Drifted.class, Native.registeredNatives());
      fail("a drifted class passed the check");
    } catch (NativeLibraryException e) {
      assertTrue(
          e.getMessage(), e.getMessage().contains("does not match " + Drifted.class.getName()));
      assertTrue(e.getMessage(), e.getMessage().contains("storageStats(I)[J"));
    }
  }
}

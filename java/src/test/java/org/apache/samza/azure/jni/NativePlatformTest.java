package org.apache.samza.azure.jni;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNotNull;
import static org.junit.Assert.assertTrue;

import java.io.File;
import java.util.Collections;
import java.util.Enumeration;
import java.util.Set;
import java.util.TreeSet;
import java.util.jar.JarEntry;
import java.util.jar.JarFile;
import org.junit.Test;

/**
 * The built jar carries the library exactly where {@link NativeLibrary} looks for it: one {@code
 * native/<platform>/} directory, named by {@link NativeLibrary#platform()}.
 */
public class NativePlatformTest {
  private static final String DIR = "native/";

  @Test
  public void jarHoldsTheLibraryUnderThePlatformNativeLibraryComputes() throws Exception {
    String jar = System.getProperty("samza.azure.test.jar");
    assertTrue("built jar at " + jar, jar != null && new File(jar).isFile());
    Set<String> platforms = new TreeSet<>();
    try (JarFile f = new JarFile(jar)) {
      for (Enumeration<JarEntry> e = f.entries(); e.hasMoreElements(); ) {
        String name = e.nextElement().getName();
        if (name.startsWith(DIR) && name.length() > DIR.length()) {
          platforms.add(name.substring(DIR.length()).split("/")[0]);
        }
      }
      assertEquals(Collections.singleton(NativeLibrary.platform()), platforms);
      String resource = NativeLibrary.resourcePath();
      assertNotNull(jar + " has " + resource, f.getEntry(resource.substring(1)));
    }
  }
}

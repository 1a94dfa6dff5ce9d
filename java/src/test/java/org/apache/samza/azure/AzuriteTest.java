package org.apache.samza.azure;

import static org.junit.Assert.assertFalse;

import org.apache.samza.azure.testing.Azurite;
import org.junit.AfterClass;
import org.junit.BeforeClass;

/** Base of test classes that share one Azurite, started before and stopped after the class. */
public abstract class AzuriteTest {
  protected static Azurite azurite;

  @BeforeClass
  public static void startAzurite() throws Exception {
    azurite = Azurite.start();
  }

  @AfterClass
  public static void stopAzurite() {
    azurite.close();
    assertFalse("azurite still running after close", azurite.isAlive());
  }
}
